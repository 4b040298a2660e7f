"""The Helm chart: lint, render every scenario, validate the manifests offline and check what they mean.

Rendering is `helm template` with the real helm binary (deploy/helm/install-tools.sh); manifests are
validated with kubernetes-validate --strict against the oldest Kubernetes the chart supports and a current
one; rules go through promtool. The assertions read the rendered objects, so they test what a cluster
would receive, not the template text.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import textwrap
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    VALUES_DIR,
    Helm,
    Rendered,
    find_tool,
    values_file,
)
from jsonschema import Draft7Validator, Draft202012Validator

from micboard_exporter.cli import build_parser
from micboard_exporter.config import base_schema, parse_config
from micboard_exporter.config_types import Config
from micboard_exporter.poller import parse_shard_index
from micboard_exporter.registry import PluginRegistry

# kubeVersion in Chart.yaml is >=1.25: validate against that floor and the Kubernetes of the bundled kubectl.
KUBERNETES_VERSIONS = ("1.25.0", "1.33.0")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCENARIOS = sorted(p.name for p in VALUES_DIR.glob("*.yaml"))
FULLNAME = f"{RELEASE}-micboard-exporter"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(find_tool("helm"), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def defaults(helm: Helm) -> Rendered:
    return helm.render()


@pytest.fixture(scope="module")
def chart_with_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose files/ hold the test's own rules and dashboard, to test the mechanism."""
    chart = tmp_path_factory.mktemp("chart") / "micboard-exporter"
    shutil.copytree(CHART_DIR, chart)
    files = chart / "files"
    shutil.rmtree(files, ignore_errors=True)
    (files / "dashboards").mkdir(parents=True)
    shutil.copyfile(FIXTURES / "rules.yml", files / "micboard.rules.yml")
    for dashboard in (FIXTURES / "dashboards").glob("*.json"):
        shutil.copyfile(dashboard, files / "dashboards" / dashboard.name)
    return chart


def _pod_spec(rendered: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.workload()["spec"]["template"]["spec"]
    return spec


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# --- chart metadata and lint -------------------------------------------------------------------------


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"], "bump Chart.yaml appVersion with pyproject's version"


def test_every_scenario_named_in_the_issue_is_covered() -> None:
    assert {"servicemonitor-rules.yaml", "sharding-3.yaml", "existing-secret.yaml", "network-policy.yaml"} <= set(
        SCENARIOS
    )


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_helm_lint_strict(helm: Helm, scenario: str | None) -> None:
    args = ["lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE]
    if scenario:
        args += ["--values", str(values_file(scenario))]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_packaged_chart_carries_rules_and_dashboards(helm: Helm, tmp_path: Path) -> None:
    result = helm.run("package", str(CHART_DIR), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [package] = tmp_path.glob("micboard-exporter-*.tgz")
    with tarfile.open(package) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames()}
    assert {"Chart.yaml", "values.yaml", "values.schema.json", "README.md", "templates/NOTES.txt",
            "files/micboard.rules.yml"} <= names
    shipped = {n.removeprefix("files/dashboards/") for n in names if n.startswith("files/dashboards/")}
    assert shipped == {p.name for p in (REPO_ROOT / "dashboards").glob("*.json")}


# --- offline validation of every rendered manifest ---------------------------------------------------


@pytest.fixture(scope="module")
def rendered_manifests(helm: Helm, chart_with_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every scenario (and the defaults, and everything on) rendered, one file per Kubernetes object."""
    out = tmp_path_factory.mktemp("manifests")
    renders = {"defaults": helm.render()}
    renders |= {name: helm.render([values_file(name)]) for name in SCENARIOS}
    # Everything optional on at once, with the mechanism fixtures standing in for generated rules/dashboards.
    renders["all-features"] = helm.render(
        [values_file("existing-secret.yaml"), values_file("network-policy.yaml"),
         values_file("servicemonitor-rules.yaml")],
        sets=["prometheusRule.enabled=true", "dashboards.enabled=true", "sharding.replicas=2"],
        chart=chart_with_fixtures,
    )
    for scenario, rendered in renders.items():
        for i, doc in enumerate(rendered.docs):
            (out / f"{scenario}-{i:02d}-{doc['kind']}.yaml").write_text(yaml.safe_dump(doc))
    return out


@pytest.mark.parametrize("k8s_version", KUBERNETES_VERSIONS)
def test_manifests_pass_kubernetes_validate_strict(rendered_manifests: Path, k8s_version: str) -> None:
    validator = find_tool("kubernetes-validate")
    # prometheus-operator kinds have no schema in kubernetes-validate; they are checked semantically below.
    files = sorted(
        str(p) for p in rendered_manifests.glob("*.yaml")
        if not p.name.endswith(("-ServiceMonitor.yaml", "-PrometheusRule.yaml"))
    )
    kinds = {Path(f).stem.rsplit("-", 1)[1] for f in files}
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget",
            "ServiceAccount", "Pod"} <= kinds
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", k8s_version, *files],
        capture_output=True, text=True, timeout=120, check=False,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    # A kind without a schema is only a warning; every object here must really have been validated.
    assert "WARN" not in report, report
    assert "ERROR" not in report, report
    assert report.count(" passed for resource ") == len(files), report


# --- defaults: a safe, single exporter ---------------------------------------------------------------


def test_defaults_render_a_hardened_single_exporter(defaults: Rendered) -> None:
    assert not defaults.of_kind("StatefulSet")
    deployment = defaults.one("Deployment", FULLNAME)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = _pod_spec(defaults)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod
    container = defaults.container()
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["ports"] == [{"name": "http", "containerPort": 9798, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    app_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    assert container["image"] == f"micboard-exporter:{app_version}"


def test_exporter_runs_the_config_the_chart_mounts(defaults: Rendered) -> None:
    container = defaults.container()
    args = container["args"]
    # The exporter's own parser takes the chart's flags (argparse exits on an unknown one).
    parsed = build_parser().parse_args(args)
    assert parsed.command == "run"
    assert parsed.listen == ":9798"
    assert parsed.log_format == "json"
    assert parsed.shard_count == 1
    config_arg = next(a for a in args if a.startswith("--config="))
    config_path = Path(config_arg.split("=", 1)[1])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert config_path.parent == Path(mount["mountPath"])
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates, so /-/reload would be useless"
    volume = next(v for v in _pod_spec(defaults)["volumes"] if v["name"] == "config")
    configmap = defaults.one("ConfigMap", volume["configMap"]["name"])
    [item] = volume["configMap"]["items"]
    assert item["path"] == config_path.name
    config = yaml.safe_load(configmap["data"][item["key"]])
    assert config == {"poll": {"interval": "5s", "timeout": "2s"}, "devices": []}
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert any(v["name"] == tmp["name"] and "emptyDir" in v for v in _pod_spec(defaults)["volumes"])


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_rendered_config_passes_the_exporters_schema(helm: Helm, scenario: str | None) -> None:
    rendered = helm.render([values_file(scenario)] if scenario else [])
    configmaps = [c for c in rendered.of_kind("ConfigMap") if "config.yaml" in c.get("data", {})]
    if scenario == "existing-configmap.yaml":
        assert not configmaps
        return
    [configmap] = configmaps
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    errors = sorted(Draft202012Validator(base_schema()).iter_errors(config), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_config_change_rolls_the_pods_and_nothing_else_does(helm: Helm, defaults: Rendered) -> None:
    def checksum(rendered: Rendered) -> str:
        value: str = rendered.workload()["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    base = checksum(defaults)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum(helm.render()) == base
    assert checksum(helm.render(sets=["logLevel=debug"])) == base
    assert checksum(helm.render(sets=["config.poll.interval=10s"])) != base


def test_service_and_pdb_select_the_exporter_pods(defaults: Rendered) -> None:
    pod_labels = defaults.workload()["spec"]["template"]["metadata"]["labels"]
    service = defaults.one("Service", FULLNAME)
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 9798, "targetPort": "http", "protocol": "TCP"}]
    pdb = defaults.one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # One exporter has no spare: minAvailable would block every node drain.
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    account = defaults.one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert _pod_spec(defaults)["serviceAccountName"] == account["metadata"]["name"]


def test_helm_test_pod_checks_readiness_through_the_service(defaults: Rendered) -> None:
    [pod] = [d for d in defaults.of_kind("Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    [container] = pod["spec"]["containers"]
    url = container["command"][-1]
    service = defaults.one("Service", FULLNAME)
    assert url == f"http://{FULLNAME}.{NAMESPACE}.svc:{service['spec']['ports'][0]['port']}/-/ready"
    assert container["image"] == defaults.container()["image"]
    # The test pod must not carry the workload's selector labels, or its ReplicaSet would adopt it.
    selector = defaults.workload()["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The probe script itself: urlopen raises on a non-2xx answer, which is what fails `helm test`.
    script = container["command"][2]
    compile(script, "helm-test", "exec")
    assert "urlopen(url" in script


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (None, ["a Deployment", "svc/mics-micboard-exporter 9798", "`config.devices` is empty", "No ServiceMonitor"]),
        ("sharding-3.yaml", ["a StatefulSet of 3 shards", "pod/mics-micboard-exporter-0 9798", "to -2"]),
        ("servicemonitor-rules.yaml",
         ['ServiceMonitor: created with labels {"release":"kps"}', "PrometheusRule: created"]),
        ("host-network.yaml", ["hostNetwork is on"]),
    ],
)
def test_install_notes_render(helm: Helm, scenario: str | None, expected: list[str]) -> None:
    # NOTES.txt is rendered only at install time, so a mistake in it would show up first on a user's cluster.
    args = ["install", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--dry-run=client"]
    if scenario:
        args += ["--values", str(values_file(scenario))]
    result = helm.run(*args)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("\nNOTES:\n", 1)[1]
    for text in expected:
        assert text in notes, notes
    assert "<no value>" not in notes


def test_host_network_switches_dns_and_update_strategy(helm: Helm) -> None:
    rendered = helm.render([values_file("host-network.yaml")])
    pod = _pod_spec(rendered)
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    # The new pod can't bind the node's ports while the old one holds them.
    assert rendered.workload()["spec"]["strategy"] == {"type": "Recreate"}


# --- sharding ----------------------------------------------------------------------------------------


def _expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in container args ($$ escapes, unknown names stay as written)."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, arg)


def test_sharding_renders_a_statefulset_passing_each_pod_its_shard(helm: Helm) -> None:
    rendered = helm.render([values_file("sharding-3.yaml")])
    assert not rendered.of_kind("Deployment")
    sts = rendered.one("StatefulSet", FULLNAME)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    headless = rendered.one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"

    container = rendered.container()
    env = _env(container)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    args = container["args"]
    assert args.count("--shard-count=3") == 1
    # Each pod of a StatefulSet is named <name>-<ordinal>; after Kubernetes expands $(POD_NAME) every pod
    # must pass a --shard-index whose trailing ordinal is its own, and together they cover 0..n-1.
    parser = build_parser()
    seen = set()
    for ordinal in range(sts["spec"]["replicas"]):
        expanded = [_expand(a, {"POD_NAME": f"{sts['metadata']['name']}-{ordinal}"}) for a in args]
        parsed = parser.parse_args(expanded)
        assert parsed.shard_count == 3
        shard = parse_shard_index(parsed.shard_index)
        assert shard == ordinal, parsed.shard_index
        seen.add(shard)
    assert seen == {0, 1, 2}


def test_one_replica_is_not_sharded(helm: Helm) -> None:
    rendered = helm.render([values_file("sharding-3.yaml")], sets=["sharding.replicas=1"])
    assert rendered.workload()["kind"] == "Deployment"
    assert not any(a.startswith("--shard") for a in rendered.container()["args"])
    assert "POD_NAME" not in _env(rendered.container())


# --- device secrets ----------------------------------------------------------------------------------


def test_existing_secret_feeds_every_variable_the_config_names(helm: Helm) -> None:
    rendered = helm.render([values_file("existing-secret.yaml")])
    env = _env(rendered.container())
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {
        # Renamed through deviceSecrets.env.
        "EWDX_FOH_PASSWORD": {"name": "mic-passwords", "key": "ewdx-foh"},
        # Named by a per-plugin default; the key defaults to the variable's name. Optional, because every
        # device here brings its own reference, which replaces the default's.
        "EWDX_DEFAULT_PASSWORD": {"name": "mic-passwords", "key": "EWDX_DEFAULT_PASSWORD", "optional": True},
    }
    # *_file options read the same Secret, mounted where the config points.
    config = yaml.safe_load(rendered.one("ConfigMap")["data"]["config.yaml"])
    file_option = Path(config["devices"][2]["options"]["password_file"])
    mount = next(m for m in rendered.container()["volumeMounts"] if m["name"] == "device-secrets")
    assert file_option.parent == Path(mount["mountPath"])
    assert mount["readOnly"] is True
    volume = next(v for v in _pod_spec(rendered)["volumes"] if v["name"] == "device-secrets")
    assert volume["secret"]["secretName"] == "mic-passwords"
    assert volume["secret"]["defaultMode"] == 0o440


def _load_like_the_pod(rendered: Rendered, tmp_path: Path, secret: Mapping[str, str]) -> Config:
    """Play kubelet and the exporter: env from a Secret holding ``secret``, the Secret mounted as files where
    the chart mounts it, then the exporter's full config check with the installed plugins."""
    container = rendered.container()
    environ = {}
    for name, entry in _env(container).items():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        if ref["key"] in secret:
            environ[name] = secret[ref["key"]]
        else:
            assert ref.get("optional") is True, f"{name}: the pod would not start without key {ref['key']}"
    text = rendered.one("ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"]
    mount = next((m for m in container["volumeMounts"] if m["name"] == "device-secrets"), None)
    if mount is not None:
        mounted = tmp_path / "secrets"
        mounted.mkdir()
        for key, value in secret.items():
            (mounted / key).write_text(value)
        text = text.replace(mount["mountPath"], str(mounted))
    return parse_config("config.yaml", text, PluginRegistry.discover(), environ=environ, base_dir=tmp_path)


def test_exporter_config_loader_finds_every_secret_the_pod_gets(helm: Helm, tmp_path: Path) -> None:
    rendered = helm.render([values_file("existing-secret.yaml")])
    # The Secret lacks EWDX_DEFAULT_PASSWORD: every device brings its own reference.
    config = _load_like_the_pod(rendered, tmp_path, {"ewdx-foh": "foh-secret", "ewdx-mon": "mon-secret"})
    secrets = {d.id: {k: s.reveal() for k, s in d.secrets.items()} for d in config.devices}
    assert secrets == {
        "stage-left-rack": {},
        "ewdx-foh": {"password": "foh-secret"},
        "ewdx-mon": {"password": "mon-secret"},
    }


@pytest.mark.parametrize("scenario", sorted(set(SCENARIOS) - {"existing-configmap.yaml"}))
def test_every_scenario_config_passes_the_exporters_check(helm: Helm, tmp_path: Path, scenario: str) -> None:
    """What `micboard-exporter check-config` does at start, on the config each scenario mounts."""
    rendered = helm.render([values_file(scenario)])
    config = _load_like_the_pod(rendered, tmp_path, {"ewdx-foh": "x", "ewdx-mon": "y"})
    source = yaml.safe_load(rendered.one("ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"])
    assert [d.id for d in config.devices] == [d["id"] for d in source.get("devices") or []]


def test_config_naming_a_variable_without_a_secret_fails_the_render(helm: Helm) -> None:
    result = helm.template([values_file("existing-secret.yaml")], sets=["deviceSecrets.existingSecret="])
    assert result.returncode != 0
    assert "EWDX_DEFAULT_PASSWORD, EWDX_FOH_PASSWORD" in result.stderr
    assert "deviceSecrets.existingSecret" in result.stderr


def test_existing_configmap_is_mounted_instead_of_rendering_one(helm: Helm) -> None:
    rendered = helm.render([values_file("existing-configmap.yaml")])
    assert not rendered.of_kind("ConfigMap")
    volume = next(v for v in _pod_spec(rendered)["volumes"] if v["name"] == "config")
    assert volume["configMap"] == {"name": "mics-config", "items": [{"key": "micboard.yaml", "path": "config.yaml"}]}
    # Nothing to checksum: the chart can't see that ConfigMap's content.
    assert "checksum/config" not in rendered.workload()["spec"]["template"]["metadata"].get("annotations", {})
    assert _env(rendered.container())["EWDX_FOH_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mic-passwords", "key": "EWDX_FOH_PASSWORD",
    }


# --- network policy ----------------------------------------------------------------------------------


def test_network_policy_limits_egress_to_devices_and_dns(helm: Helm) -> None:
    rendered = helm.render([values_file("network-policy.yaml")])
    policy = rendered.one("NetworkPolicy")
    pod_labels = rendered.workload()["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    devices, dns = policy["spec"]["egress"]
    assert devices["to"] == [{"ipBlock": {"cidr": "10.0.20.0/24"}}, {"ipBlock": {"cidr": "10.0.21.0/24"}}]
    assert devices["ports"] == [{"port": 2202, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    [ingress] = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    monitoring, test_pod = ingress["from"]
    assert monitoring == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    # The helm test pod stays allowed when scraping is restricted.
    [helm_test] = [p for p in rendered.of_kind("Pod") if p["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    assert test_pod["podSelector"]["matchLabels"].items() <= helm_test["metadata"]["labels"].items()


def test_network_policy_default_ports_cover_every_protocol(helm: Helm) -> None:
    rendered = helm.render(sets=["networkPolicy.enabled=true", "networkPolicy.egress.deviceCIDRs={10.0.0.0/8}"])
    policy = rendered.one("NetworkPolicy")
    ports = {(p["port"], p["protocol"]) for p in policy["spec"]["egress"][0]["ports"]}
    assert ports == {(2202, "TCP"), (2202, "UDP"), (443, "TCP"), (45, "UDP"), (53212, "UDP")}
    # No restriction on scrapers unless asked for.
    assert "from" not in policy["spec"]["ingress"][0]


def test_network_policy_without_device_networks_is_refused(helm: Helm) -> None:
    result = helm.template(sets=["networkPolicy.enabled=true"])
    assert result.returncode != 0
    assert "deviceCIDRs is empty" in result.stderr


# --- prometheus-operator objects ---------------------------------------------------------------------


def test_servicemonitor_scrapes_the_service(helm: Helm) -> None:
    rendered = helm.render([values_file("servicemonitor-rules.yaml")])
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service", FULLNAME)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    assert endpoint["metricRelabelings"][0]["action"] == "drop"
    assert monitor["spec"]["jobLabel"] in service["metadata"]["labels"]


def _promtool_check(groups: list[dict[str, Any]], tmp_path: Path) -> str:
    promtool = find_tool("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    proc = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_prometheusrule_carries_the_rules_file_verbatim(helm: Helm, chart_with_fixtures: Path, tmp_path: Path) -> None:
    rendered = helm.render(sets=["prometheusRule.enabled=true", "prometheusRule.labels.release=kps"],
                           chart=chart_with_fixtures)
    rule = rendered.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    source = yaml.safe_load((FIXTURES / "rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    # Prometheus' own templates reach Prometheus untouched: helm did not evaluate them.
    assert "{{ $labels.device }}" in rendered.text
    assert "4 rules found" in _promtool_check(rule["spec"]["groups"], tmp_path)


def test_prometheusrule_from_the_generated_rules_passes_promtool(helm: Helm, tmp_path: Path) -> None:
    rendered = helm.render([values_file("servicemonitor-rules.yaml")])
    rule = rendered.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    generated = yaml.safe_load((REPO_ROOT / "alerts" / "micboard.rules.yml").read_text())
    assert rule["spec"]["groups"] == generated["groups"]
    count = sum(len(g["rules"]) for g in generated["groups"])
    assert f"SUCCESS: {count} rules found" in _promtool_check(rule["spec"]["groups"], tmp_path)


def test_prometheusrule_drops_disabled_alerts_and_emptied_groups(
    helm: Helm, chart_with_fixtures: Path, tmp_path: Path
) -> None:
    rendered = helm.render(sets=["prometheusRule.enabled=true",
                                 "prometheusRule.disabledAlerts={MicboardBatteryLow,MicboardBatteryCritical}"],
                           chart=chart_with_fixtures)
    groups = rendered.one("PrometheusRule")["spec"]["groups"]
    assert [g["name"] for g in groups] == ["micboard.recording", "micboard.alerts"]
    assert [r.get("alert") for r in groups[1]["rules"]] == ["MicboardDeviceDown"]
    assert "2 rules found" in _promtool_check(groups, tmp_path)


def test_prometheusrule_without_rules_file_fails_with_the_fix(helm: Helm, tmp_path: Path) -> None:
    chart = tmp_path / "micboard-exporter"
    shutil.copytree(CHART_DIR, chart)
    (chart / "files" / "micboard.rules.yml").unlink(missing_ok=True)
    result = helm.template(sets=["prometheusRule.enabled=true"], chart=chart)
    assert result.returncode != 0
    assert "sync_files.py" in result.stderr


# --- Grafana dashboards ------------------------------------------------------------------------------


def test_dashboards_become_one_sidecar_configmap_each(helm: Helm, chart_with_fixtures: Path) -> None:
    rendered = helm.render(sets=["dashboards.enabled=true"], chart=chart_with_fixtures)
    sources = sorted((FIXTURES / "dashboards").glob("*.json"))
    maps = [c for c in rendered.of_kind("ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
    assert len(maps) == len(sources) >= 1
    for source, configmap in zip(sources, sorted(maps, key=lambda c: c["metadata"]["name"]), strict=True):
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["metadata"]["annotations"]["grafana_folder"] == "Microphones"
        assert configmap["metadata"]["name"] == f"{FULLNAME}-dashboard-{source.stem.replace('_', '-')}"
        # The bare dashboard model, byte for byte; Grafana's {{device}} legends untouched by helm.
        assert configmap["data"] == {source.name: source.read_text().rstrip("\n")}
        assert json.loads(configmap["data"][source.name])["uid"]


def test_generated_dashboards_ship_in_the_chart(helm: Helm) -> None:
    rendered = helm.render([values_file("dashboards.yaml")])
    sources = {p.name: p.read_text() for p in (REPO_ROOT / "dashboards").glob("*.json")}
    maps = [c for c in rendered.of_kind("ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert sorted(k for c in maps for k in c["data"]) == sorted(sources)
    uids = set()
    for configmap in maps:
        [(name, content)] = configmap["data"].items()
        assert json.loads(content) == json.loads(sources[name])
        assert configmap["metadata"]["namespace"] == "monitoring"
        assert configmap["metadata"]["annotations"] == {"grafana_folder": "Wireless microphones"}
        # ConfigMaps hold at most 1 MiB; stay far below so dashboards can grow.
        assert len(content.encode()) < 512 * 1024, name
        uids.add(json.loads(content)["uid"])
    assert len(uids) == len(maps), "each dashboard needs its own fixed uid"


def test_dashboards_follow_the_sidecar_settings(helm: Helm, chart_with_fixtures: Path) -> None:
    rendered = helm.render(
        sets=["dashboards.enabled=true", "dashboards.namespace=monitoring", "dashboards.label=my_dashboards",
              "dashboards.labelValue=yes", "dashboards.folder="],
        chart=chart_with_fixtures,
    )
    [configmap] = [c for c in rendered.of_kind("ConfigMap") if "my_dashboards" in c["metadata"]["labels"]]
    assert configmap["metadata"]["labels"]["my_dashboards"] == "yes"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert "annotations" not in configmap["metadata"]


# --- the values shown in docs/deploy.md ---------------------------------------------------------------


def _doc_values() -> dict[str, str]:
    """``<!-- chart-values: NAME -->`` followed by a yaml fence in docs/deploy.md, by name."""
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"<!-- chart-values: ([\w-]+) -->\s*\n *```yaml\n(.*?)\n *```", text, re.DOTALL)
    return {name: textwrap.dedent(body) for name, body in blocks}


def test_docs_show_the_documented_scenarios() -> None:
    assert {"kube-prometheus-stack", "host-network", "sharding", "network-policy"} <= set(_doc_values())


@pytest.mark.parametrize("name", sorted(_doc_values()))
def test_docs_values_render_and_validate(helm: Helm, chart_with_fixtures: Path, tmp_path: Path, name: str) -> None:
    values = tmp_path / f"{name}.yaml"
    values.write_text(_doc_values()[name])
    rendered = helm.render([values], chart=chart_with_fixtures)
    lint = helm.run("lint", "--strict", str(chart_with_fixtures), "--values", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    native = [d for d in rendered.docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    for i, doc in enumerate(native):
        (tmp_path / f"{i:02d}.yaml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [find_tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSIONS[-1],
         *sorted(str(p) for p in tmp_path.glob("[0-9][0-9].yaml"))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The config shown on the page passes the exporter's own check, with the Secret the page creates.
    (tmp_path / "pod").mkdir()
    _load_like_the_pod(rendered, tmp_path / "pod", {"EWDX_FOH_PASSWORD": "x", "EWDX_MON_PASSWORD": "y"})
    if name == "kube-prometheus-stack":
        # What the page promises: Prometheus and Grafana of a release "kps" pick all three up.
        assert rendered.one("ServiceMonitor")["metadata"]["labels"]["release"] == "kps"
        assert rendered.one("PrometheusRule")["metadata"]["labels"]["release"] == "kps"
        assert [c for c in rendered.of_kind("ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
        env = _env(rendered.container())
        assert {"EWDX_FOH_PASSWORD", "EWDX_MON_PASSWORD"} <= set(env)


# --- values schema -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["sharding.replicas=three"], "/sharding/replicas"),
        (["sharding.replicas=0"], "/sharding/replicas"),
        (["containerPort=70000"], "/containerPort"),
        (["hostNetwork=yes"], "/hostNetwork"),
        (["logFormat=xml"], "/logFormat"),
        (["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["service.port=http"], "/service/port"),
        (["serviceMonitor.interval=fast"], "/serviceMonitor/interval"),
        (["resources.limits.memory=lots"], "/resources/limits/memory"),
        (["networkPolicy.egress.deviceCIDRs={10.0.20.1}"], "/networkPolicy/egress/deviceCIDRs/0"),
        (["deviceSecrets.env.bad-name=key"], "'bad-name' does not match"),
        (["podAnnotations.a=1", "podAnnotations.b=true"], "/podAnnotations/b"),
        # The exporter's config schema is embedded, so a broken config fails the install, not the pod.
        (["config.poll.interval=5x"], "/config/poll/interval"),
        (["config.devices[0].id=rack", "config.devices[0].plugin=shure", "config.devices[0].hots=10.0.0.1"],
         "additional properties 'hots' not allowed"),
        (["config.listen=:9798", "config.pol.interval=5s"], "additional properties 'pol' not allowed"),
        # Unknown keys: the typos that would otherwise be ignored silently.
        (["imagee.tag=1"], "imagee"),
        (["image.tags=1"], "tags"),
        (["serviceMonitor.enable=true"], "enable"),
        (["sharding.shards=3"], "shards"),
    ],
)
def test_values_schema_rejects_wrong_types_and_unknown_keys(helm: Helm, sets: list[str], complaint: str) -> None:
    result = helm.template(sets=sets)
    assert result.returncode != 0, f"{sets} was accepted"
    assert "don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr, result.stderr


def test_values_yaml_documents_every_top_level_key() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"]) - {"global"}
    text = (CHART_DIR / "values.yaml").read_text()
    for key in values:
        # Each top-level key is preceded by a comment, or opens a block whose first entry is commented.
        block = re.search(rf"((?:^#.*\n)*)^{re.escape(key)}:.*\n((?:^ +#.*\n)?)", text, re.MULTILINE)
        assert block, key
        assert block.group(1) or block.group(2), f"values.yaml: document `{key}`"


def test_values_schema_is_a_valid_draft_07_schema_embedding_the_exporters() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    # The embedded config schema resolves its references inside the values schema.
    config = {"devices": [{"id": "rack", "plugin": "shure", "host": "10.0.20.11", "channels": {"1": {"slot": 1}}}]}
    assert not list(Draft7Validator(schema).iter_errors({"config": config}))
    bad = {"config": {"devices": [{"id": "rack", "plugin": "shure", "host": "h", "port": 70000}]}}
    assert [e.message for e in Draft7Validator(schema).iter_errors(bad)]


def _walk_schema(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _walk_schema(child, f"{path}.{key}")


def test_schema_is_closed_wherever_the_chart_owns_the_shape() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    open_on_purpose = {  # Kubernetes / exporter objects passed through; the API server or exporter checks them.
        ".global", ".config", ".strategy", ".podSecurityContext", ".securityContext", ".livenessProbe",
        ".readinessProbe", ".affinity",
    }
    for path, node in _walk_schema(schema):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or 'top level'} accepts unknown keys"
        elif node.get("type") == "object":
            assert path in open_on_purpose or "additionalProperties" in node, f"{path} is an unchecked object"

