"""The generated dashboards: up to date, valid against Grafana's dashboard JSON Schema, wired to the
``datasource`` variable, querying only our metrics, and coloured where the alerts fire."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from micboard_exporter.catalogue import CATALOGUE
from micboard_exporter.selfmetrics import SelfMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
SCHEMAS = ROOT.parent / "shared" / "schemas" / "grafana"
RULES = ROOT / "alerts" / "micboard.rules.yml"
EXPECTED = {"micboard-wallboard", "micboard-channel", "micboard-fleet", "micboard-exporter"}

Json = dict[str, Any]


def _load(path: Path) -> Json:
    model: Json = json.loads(path.read_text(encoding="utf-8"))
    return model


def _panels(model: Json) -> Iterator[Json]:
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _exprs(model: Json) -> Iterator[tuple[str, str]]:
    for panel in _panels(model):
        for target in panel.get("targets", []):
            yield panel.get("title", ""), target["expr"]
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]


def _schema_dir() -> Path:
    if not SCHEMAS.is_dir():
        pytest.skip(f"Grafana JSON Schemas not found at {SCHEMAS} (CI puts shared/ beside the clone)")
    return SCHEMAS


def test_all_four_dashboards_are_committed() -> None:
    assert {p.stem for p in DASHBOARDS} == EXPECTED


def test_committed_dashboards_are_up_to_date(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "dashboards" / "generate.py"), "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for committed in DASHBOARDS:
        fresh = tmp_path / committed.name
        assert fresh.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
            f"{committed.name} is stale: run `python dashboards/generate.py` (make dashboards) and commit it"
        )
    assert {p.name for p in tmp_path.glob("*.json")} == {p.name for p in DASHBOARDS}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_validates_against_grafana_schema(path: Path) -> None:
    schemas = _schema_dir()
    schema = json.loads((schemas / "dashboard.jsonschema.json").read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(_load(path))]
    assert errors == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panel_options_validate_against_their_panel_schema(path: Path) -> None:
    schemas = _schema_dir()
    errors = []
    for panel in _panels(_load(path)):
        schema_file = schemas / f"{panel['type'].replace('-', '')}.jsonschema.json"
        if panel["type"] == "row":
            continue
        assert schema_file.exists() or panel["type"] == "histogram", f"no schema for panel type {panel['type']}"
        if not schema_file.exists():
            continue
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        parts = [("Options", panel.get("options"))]
        if "FieldConfig" in schema["definitions"]:
            parts.append(("FieldConfig", panel["fieldConfig"]["defaults"].get("custom")))
        for definition, value in parts:
            if value is None:
                continue
            validator = jsonschema.Draft7Validator({**schema, "$ref": f"#/definitions/{definition}"})
            errors += [f"{panel['title']} {definition} {list(e.absolute_path)}: {e.message[:160]}"
                       for e in validator.iter_errors(value)]
    assert errors == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_identity_and_datasource_variable(path: Path) -> None:
    model = _load(path)
    assert model["uid"] == path.stem, "uid is stable and equal to the file name, so links keep working"
    assert 8 <= len(model["uid"]) <= 40
    assert "micboard" in model["tags"]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels(model):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) > 0, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def _our_metric_names() -> set[str]:
    names = {spec.name for spec in CATALOGUE}
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}
    for family in SelfMetrics(process=False).registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    names.update(r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r)
    return names


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_queries_use_only_our_metric_catalogue(path: Path) -> None:
    known = _our_metric_names()
    unknown = set()
    for where, expr in _exprs(_load(path)):
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        for name in re.findall(r"\bmicboard[a-z0-9_:]*", without_strings):
            if name not in known:
                unknown.add((where, name))
    assert unknown == set()


def _colour(thresholds: Json, value: float) -> str:
    """The colour Grafana picks for ``value``: the last step whose value is <= it (base step: -inf)."""
    colour = ""
    for step in thresholds["steps"]:
        if step["value"] is None or value >= step["value"]:
            colour = step["color"]
    return colour


def _tile_thresholds() -> dict[str, Json]:
    model = _load(ROOT / "dashboards" / "micboard-wallboard.json")
    tile = next(p for p in model["panels"] if p.get("repeat") == "tile")
    return {
        o["matcher"]["options"]["names"][0]: next(p["value"] for p in o["properties"] if p["id"] == "thresholds")
        for o in tile["fieldConfig"]["overrides"]
    }


def _rule_expr(record: str) -> str:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return str(next(r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("record") == record
                    or r.get("alert") == record))


def test_wallboard_battery_colours_change_exactly_where_the_alerts_fire() -> None:
    state = _rule_expr("micboard:transmitter_battery_state:code")
    critical_ratio, low_ratio = (float(v) for v in re.findall(r"charge_ratio <= ([0-9.]+)", state))
    critical_bars, low_bars = (int(v) for v in re.findall(r"battery_bars <= ([0-9]+)", state))
    percent = _tile_thresholds()["Battery %"]
    # The tile shows `charge_ratio * 100`; a pack exactly at a threshold is in that alert's state.
    assert _colour(percent, critical_ratio * 100) == "red"
    assert _colour(percent, critical_ratio * 100 + 0.5) == "orange"
    assert _colour(percent, low_ratio * 100) == "orange"
    assert _colour(percent, low_ratio * 100 + 0.5) == "green"
    bars = _tile_thresholds()["Battery bars"]
    assert [_colour(bars, n) for n in range(6)] == (
        ["red"] * (critical_bars + 1) + ["orange"] * (low_bars - critical_bars) + ["green"] * (5 - low_bars)
    )


def test_wallboard_rf_colour_turns_where_rf_weak_fires() -> None:
    weak = float(re.findall(r"< (-[0-9.]+)", _rule_expr("MicRFSignalWeak"))[0])
    rf = _tile_thresholds()["RF dBm"]
    assert _colour(rf, weak) == "green"
    assert _colour(rf, weak - 0.5) == "orange"


def test_wallboard_tile_variable_reads_title_and_key_from_query_result() -> None:
    model = _load(ROOT / "dashboards" / "micboard-wallboard.json")
    variable = next(v for v in model["templating"]["list"] if v["name"] == "tile")
    assert variable["hide"] == 2
    assert variable["sort"] == 3, "numerical sort on the title, which starts with the slot"
    # Grafana renders query_result rows as name{label="value",...} with Prometheus' sorted label order.
    labels = {
        "channel": "1", "device": "rack-a", "instance": "127.0.0.1:9798", "job": "micboard", "name": "Vocal 1",
        "performer": "Pastor Mike", "room": "main-hall", "slot": "12", "wallboard_key": "rack-a/1",
        "wallboard_title": "12 · Pastor Mike",
    }
    rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    row = "micboard:wallboard_tile:info{" + rendered + "} 1 1700000000000"
    pattern = variable["regex"].strip("/").replace("(?<", "(?P<")
    match = re.search(pattern, row)
    assert match is not None
    assert match.group("value") == "rack-a/1"
    assert match.group("text") == "12 · Pastor Mike"
    tile = next(p for p in model["panels"] if p.get("repeat") == "tile")
    assert tile["title"] == "${tile:text}"
    assert all('wallboard_key=~"$tile"' in t["expr"] for t in tile["targets"])
