"""The generated rule file: up to date, valid for Prometheus 2.42, every alert unit-tested with promtool,
and the example Alertmanager config valid and routing as documented."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "micboard.rules.yml"
UNIT_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "alerts" / "alertmanager.example.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

EXPECTED_ALERTS = {
    "MicBatteryLow", "MicBatteryCritical", "MicTransmitterLost", "MicRFSignalWeak", "MicRFDropouts",
    "MicInterferenceDetected", "MicEncryptionError", "MicAudioClipping", "MicReceiverDown", "MicDeviceDataStale",
    "MicExporterDown", "MicPollErrorsHigh", "MicConfigReloadFailed",
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: install it with `apt-get install -y prometheus prometheus-alertmanager`")
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def _generate(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "rules.yml"
    proc = _run(sys.executable, str(ROOT / "alerts" / "generate.py"), "--output", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return out


def _alerts(path: Path) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_committed_rules_are_up_to_date(tmp_path: Path) -> None:
    fresh = _generate(tmp_path)
    assert RULES.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "alerts/micboard.rules.yml is stale: run `python alerts/generate.py` (make dashboards) and commit it"
    )


def test_promtool_accepts_the_rules() -> None:
    proc = _run(_tool("promtool"), "check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(unit_test: Path) -> None:
    proc = _run(_tool("promtool"), "test", "rules", str(unit_test))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    assert fires >= EXPECTED_ALERTS, f"alerts never shown to fire: {sorted(EXPECTED_ALERTS - fires)}"
    assert silent >= EXPECTED_ALERTS, f"alerts never shown to stay silent: {sorted(EXPECTED_ALERTS - silent)}"


def test_alerts_follow_the_style_guide() -> None:
    alerts = _alerts(RULES)
    assert set(alerts) == EXPECTED_ALERTS
    runbook_headings = {
        m.group(1).lower() for m in re.finditer(r"^## (\w+)$", RUNBOOKS.read_text(encoding="utf-8"), re.MULTILINE)
    }
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        summary = rule["annotations"]["summary"]
        assert "{{" not in summary, f"{name}: summary must be static"
        assert re.fullmatch(r"[A-Z].+\.", summary), f"{name}: summary must be a sentence"
        assert "{{" in rule["annotations"]["description"], f"{name}: description must be templated"
        url = rule["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("docs/runbooks.md"), url
        assert url.split("#")[1] in runbook_headings, f"{name}: no section `## {name}` in docs/runbooks.md"


def test_channel_alerts_name_the_channel() -> None:
    for name, rule in _alerts(RULES).items():
        if "channel" in rule["expr"] and "micboard_channel_info" in rule["expr"]:
            description = rule["annotations"]["description"]
            for label in ("name", "performer", "channel", "device", "room"):
                assert f"$labels.{label}" in description, f"{name} does not mention {label}"


def test_for_override_shortens_every_alert(tmp_path: Path) -> None:
    alerts = _alerts(_generate(tmp_path, "--for", "2s"))
    assert {rule.get("for") for rule in alerts.values()} == {"2s"}
    proc = _run(_tool("promtool"), "check", "rules", str(tmp_path / "rules.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runbook_base_url_is_a_parameter(tmp_path: Path) -> None:
    alerts = _alerts(_generate(tmp_path, "--runbook-base-url", "https://wiki.example.org/av/runbooks"))
    assert alerts["MicBatteryLow"]["annotations"]["runbook_url"] == "https://wiki.example.org/av/runbooks#micbatterylow"


def test_example_alertmanager_config_is_valid() -> None:
    proc = _run(_tool("amtool"), "check-config", str(ALERTMANAGER))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=MicBatteryCritical", "device=rack-a", "channel=1"], "pager,crew-chat"),
        (["severity=critical", "alertname=MicReceiverDown", "device=rack-a"], "pager,crew-chat"),
        (["severity=warning", "alertname=MicBatteryLow", "device=rack-a", "channel=1"], "crew-chat"),
        (["severity=info", "alertname=Whatever"], "blackhole"),
    ],
)
def test_example_alertmanager_routes_by_severity(labels: list[str], receivers: str) -> None:
    proc = _run(_tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receivers


def test_example_alertmanager_mutes_warnings_outside_show_hours_only() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    routes = config["route"]["routes"]
    warning = [r for r in routes if r["matchers"] == ['severity="warning"']]
    critical = [r for r in routes if r["matchers"] == ['severity="critical"']]
    assert [r.get("active_time_intervals") for r in warning] == [["show-hours"]]
    assert all("active_time_intervals" not in r and "mute_time_intervals" not in r for r in critical)
    assert {i["name"] for i in config["time_intervals"]} == {"show-hours"}
    assert set(config["route"]["group_by"]) == {"device", "room"}
