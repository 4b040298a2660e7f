"""The generated reference docs are current, complete and truthful."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from micboard_exporter import docsgen
from micboard_exporter.catalogue import CATALOGUE, Level
from micboard_exporter.config import parse_config
from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.durations import parse_duration
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugin import Plugin
from micboard_exporter.plugins.synthetic import SyntheticPlugin
from micboard_exporter.probe import ProbeTarget, run_probe
from micboard_exporter.registry import PluginEntry, PluginRegistry
from micboard_exporter.selfmetrics import SelfMetrics
from micboard_exporter.state import StateStore

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def table_rows(text: str) -> dict[str, list[str]]:
    """First-column key (without backticks) → the row's cells, for every Markdown table row."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows[cells[0].strip("`")] = cells
    return rows


def section(text: str, heading: str) -> str:
    """The text from ``heading`` to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    end = re.compile(rf"^#{{1,{len(level)}}} ", re.M).search(text, start + len(heading))
    return text[start : end.start() if end else len(text)]


@pytest.fixture(scope="module")
def metrics_md() -> str:
    return (DOCS / docsgen.METRICS_MD).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def configuration_md() -> str:
    return (DOCS / docsgen.CONFIGURATION_MD).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ freshness of the files


def test_committed_docs_are_up_to_date(tmp_path: Path) -> None:
    assert docsgen.main(["--output-dir", str(tmp_path)]) == 0
    for name in (docsgen.CONFIGURATION_MD, docsgen.METRICS_MD):
        generated = (tmp_path / name).read_text(encoding="utf-8")
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == generated, f"docs/{name} is stale: run `python -m micboard_exporter.docsgen`"


def test_check_reports_stale_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docsgen.main(["--check", "--output-dir", str(tmp_path)]) == 1  # nothing generated yet
    assert not list(tmp_path.iterdir()), "--check must not write"
    assert docsgen.main(["--output-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert docsgen.main(["--check", "--output-dir", str(tmp_path)]) == 0
    metrics = tmp_path / docsgen.METRICS_MD
    metrics.write_text(metrics.read_text(encoding="utf-8").replace("micboard_device_up", "micboard_dev_up"),
                       encoding="utf-8")
    assert docsgen.main(["--check", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{metrics} is stale" in err
    assert "configuration.md" not in err
    assert "+| `micboard_device_up`" in err  # the diff shows what changed


def test_generation_is_deterministic() -> None:
    registry = PluginRegistry.discover()
    assert docsgen.generate(registry) == docsgen.generate(PluginRegistry.discover())


# ------------------------------------------------------------------------------ metrics.md


def test_every_catalogue_metric_is_documented_with_type_unit_and_labels(metrics_md: str) -> None:
    rows = table_rows(section(metrics_md, "## Device metrics"))
    assert len(rows) == len(CATALOGUE)
    for spec in CATALOGUE:
        name, kind, unit, labels, meaning = rows[spec.name]
        assert kind == spec.type
        assert unit == (spec.unit or "—")
        documented = re.findall(r"`([a-z_]+)`", labels)
        assert documented[0] == "device"
        assert set(spec.labels) <= set(documented)
        assert ("channel" in documented) == (spec.level is not Level.DEVICE)
        assert ("antenna" in documented) == (spec.level is Level.ANTENNA)
        assert meaning == spec.help.replace("|", "\\|")


def test_metrics_doc_explains_caching_and_freshness(metrics_md: str) -> None:
    freshness = section(metrics_md, "## Freshness: values are cached")
    assert "last successful poll or pushed update" in freshness
    assert "`micboard_device_last_success_timestamp_seconds`" in freshness
    assert "`micboard_device_up`" in freshness


def _documented_families(metrics_md: str) -> dict[str, str]:
    return {name: cells[1] for name, cells in table_rows(metrics_md).items()}


@pytest.mark.anyio
async def test_every_family_served_on_metrics_is_documented(metrics_md: str) -> None:
    """Scrape what a running exporter serves (a polled device, a failed one, self-metrics) and look up each
    family, so a metric added anywhere without docs fails here."""
    plugin = SyntheticPlugin()
    good = DeviceConfig(id="rx-1", plugin="synthetic", host="127.0.0.1", labels={"room": "hall"})
    bad = DeviceConfig(id="rx-2", plugin="synthetic", host="127.0.0.2")
    store = StateStore()
    store.set_devices([good, bad])
    store.record_success("rx-1", await plugin.poll(good))
    store.record_failure("rx-2", "timeout", "no answer")
    metrics = SelfMetrics(process=True)
    metrics.poll_duration.labels("synthetic").observe(0.01)
    text = store.scrape() + metrics.render().decode()
    served = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    documented = _documented_families(metrics_md)
    assert len(served) > 30
    for family, kind in served.items():
        if family.startswith(("process_", "python_")):
            assert f"`{family.split('_')[0]}_*`" in metrics_md
            continue
        if family.endswith("_created") and kind == "gauge":
            assert "`<name>_created`" in metrics_md  # prometheus_client's creation-time companion
            base = family.removesuffix("_created")
            assert base in documented or base + "_total" in documented, family
            continue
        name = family + "_total" if kind == "counter" and not family.endswith("_total") else family
        assert name in documented, f"{name} is served on /metrics but not in docs/metrics.md"
        assert documented[name] == kind


@pytest.mark.anyio
async def test_probe_families_are_documented(metrics_md: str) -> None:
    from micboard_exporter.config_types import Config, ProbeConfig

    config = Config(source="x.yaml", probe=ProbeConfig(allowed_targets=("127.0.0.0/8",)))
    registry = PluginRegistry.from_classes(SyntheticPlugin)
    text = await run_probe(config, registry, ProbeTarget("127.0.0.1", None), "synthetic", 5.0)
    probe_rows = table_rows(section(metrics_md, "## `/probe`"))
    documented = _documented_families(metrics_md)
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        assert family in documented
        assert documented[family] == kind
        if family.startswith("micboard_probe_"):
            assert family in probe_rows


def test_self_metric_labels_come_from_the_metric_objects(metrics_md: str) -> None:
    # The poll duration histogram has no children before the first poll; its label must still be documented.
    rows = table_rows(section(metrics_md, "## Exporter metrics"))
    assert rows["micboard_poll_duration_seconds"][3] == "`plugin`"
    assert rows["micboard_poll_cycle_devices"][3] == "`result`"
    assert rows["micboard_exporter_build_info"][3] == "`version`, `python`"


# ------------------------------------------------------------------------------ configuration.md


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        files("micboard_exporter").joinpath("config.schema.json").read_text(encoding="utf-8")
    )
    return schema


def _properties(node: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every (key, subschema) under any ``properties`` anywhere in a schema, $defs included."""
    if isinstance(node, Mapping):
        yield from (node.get("properties") or {}).items()
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value)


def test_every_schema_key_is_documented_with_its_description(configuration_md: str) -> None:
    rows = table_rows(section(configuration_md, "## Keys"))
    keys = list(_properties(_schema()))
    assert len(keys) > 25
    for key, subschema in keys:
        matches = [cells for path, cells in rows.items() if path == key or path.endswith("." + key)]
        assert matches, f"schema key {key!r} is not in docs/configuration.md"
        if "description" in subschema:
            assert any(subschema["description"] in cells[3].replace("\\|", "|") for cells in matches), key


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("listen", "string"),
        ("poll.breaker.max_interval", "duration"),
        ("battery.low.ratio", "number, ≥ 0, ≤ 1"),
        ("probe.allowed_targets", "list of strings"),
        ("devices[].id", "string"),
        ("devices[].port", "integer, ≥ 1, ≤ 65535"),
        ("devices[].labels", "mapping of names to strings"),
        ("devices[].channels.<number>.slot", "integer, ≥ 1, ≤ 9999"),
        ("devices[].channels.<number>.name", "string, at most 128 characters"),
    ],
)
def test_nested_keys_have_full_paths_and_types(configuration_md: str, path: str, kind: str) -> None:
    assert table_rows(configuration_md)[path][1] == kind


def test_required_device_keys_are_marked(configuration_md: str) -> None:
    rows = table_rows(configuration_md)
    for key in ("id", "plugin", "host"):
        assert rows[f"devices[].{key}"][3].startswith("**Required.**")
    assert "Required" not in rows["devices[].port"][3]


def test_documented_defaults_are_the_loaders_defaults(configuration_md: str) -> None:
    """What a user reads as the default is what an empty config file actually gets."""
    config = parse_config("empty.yaml", "", PluginRegistry.from_classes(SyntheticPlugin), environ={})
    rows = table_rows(configuration_md)

    def default(path: str) -> Any:
        value = yaml.safe_load(rows[path][2].strip("`"))
        return parse_duration(value) if rows[path][1] == "duration" else value

    assert default("listen") == config.listen
    for key in ("interval", "timeout", "batch_size", "max_concurrency", "retries", "retry_backoff"):
        assert default(f"poll.{key}") == getattr(config.poll, key), key
    assert default("poll.breaker.failures") == config.poll.breaker.failures
    assert default("poll.breaker.max_interval") == config.poll.breaker.max_interval
    for level in ("low", "critical"):
        for key in ("ratio", "bars"):
            assert default(f"battery.{level}.{key}") == getattr(getattr(config.battery, level), key)
    assert default("probe.timeout_offset") == config.probe.timeout_offset
    assert default("probe.allowed_targets") == list(config.probe.allowed_targets)


def test_intro_covers_durations_secrets_channels_and_error_messages(configuration_md: str) -> None:
    intro = section(configuration_md, "## How the file is read")
    for word in ("password_env", "password_file", "<name>_env", "<name>_file", "`500ms`", "`1h30m`",
                 "`slot`", "`performer`", "devices[3].host"):
        assert word in intro, word
    # The error example is the real loader's output for the bad file shown.
    assert "config.yaml: poll.timout: unknown key; allowed keys here:" in intro
    assert "config.yaml: devices[0].host: '10.0.20.11/24' is neither an IP address nor a valid host name" in intro


def test_each_installed_builtin_plugin_has_its_options_documented(configuration_md: str) -> None:
    registry = PluginRegistry.discover()
    plugins = docsgen.documented_plugins(registry)
    assert "synthetic" in [name for name, _ in plugins]
    for name, _ in plugins:
        rows = table_rows(section(configuration_md, f"### `{name}`"))
        for key, _sub in (registry.get(name).options_schema.get("properties") or {}).items():
            assert f"options.{key}" in rows, f"{name}: option {key} not documented"


# ------------------------------------------------------------------------------ generator behaviour


class _OptionsPlugin(Plugin):
    """Talks to a made-up box."""

    name = "made-up"
    default_port = 4242
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "$defs": {"level": {"type": "string", "enum": ["low", "high"], "description": "How loud."}},
        "properties": {
            "token_env": {"type": "string", "description": "Variable holding the API token."},
            "level": {"$ref": "#/$defs/level", "default": "low"},
            "tls": {"type": "object", "properties": {"verify": {"type": "boolean", "description": "Check it."}},
                    "default": {"verify": True}},
            "paths": {"type": "array", "items": {"type": "string"}},
        },
    }

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        return DeviceSnapshot(device_id=device.id)


def test_plugin_options_schema_is_rendered_with_refs_nesting_and_defaults() -> None:
    text = docsgen.render_configuration(PluginRegistry.from_classes(_OptionsPlugin, SyntheticPlugin))
    plugin_section = section(text, "### `made-up`")
    assert "Talks to a made-up box." in plugin_section
    assert "default port 4242" in plugin_section
    rows = table_rows(plugin_section)
    assert rows["options.token_env"][1:] == ["string", "", "Variable holding the API token."]
    assert rows["options.level"][1:] == ["one of low, high", "`low`", "How loud."]
    assert rows["options.tls.verify"][1:] == ["boolean", "`true`", "Check it."]
    assert rows["options.paths"][1] == "list of strings"
    assert "options" not in rows
    # Sections are sorted by plugin name.
    assert text.index("### `made-up`") < text.index("### `synthetic`")


def _entry(name: str, distribution: str | None, cls: type[Plugin] | None, error: str | None = None) -> PluginEntry:
    return PluginEntry(name, f"x:{name}", distribution, "1.0", cls, error)


def test_third_party_plugins_are_left_out_unless_asked() -> None:
    registry = PluginRegistry([
        _entry("synthetic", "micboard-exporter", SyntheticPlugin),
        _entry("made-up", "acme-micboard", _OptionsPlugin),
    ])
    assert docsgen.documented_plugins(registry) == [("synthetic", "micboard-exporter")]
    assert docsgen.documented_plugins(registry, all_plugins=True) == [
        ("made-up", "acme-micboard"), ("synthetic", "micboard-exporter")
    ]
    text = docsgen.render_configuration(registry, all_plugins=True)
    assert "from the `acme-micboard` distribution" in section(text, "### `made-up`")


def test_a_builtin_plugin_that_fails_to_load_stops_generation() -> None:
    registry = PluginRegistry([
        _entry("synthetic", "micboard-exporter", SyntheticPlugin),
        _entry("broken", "micboard-exporter", None, "ImportError: no module named foo"),
    ])
    with pytest.raises(docsgen.DocsError, match="'broken' failed to load.*no module named foo"):
        docsgen.render_configuration(registry)
