"""Panel helpers on top of grafanalib, and the normalisation that makes its output a current Grafana model.

grafanalib 0.7.1 still emits the Angular-era dashboard model (``schemaVersion`` 12, ``rows``, per-panel
``span``/``height``, ``"null"`` thresholds, template ``useTags`` ...), which Grafana 11 migrates on import
and the dashboard JSON Schema rejects. We keep grafanalib for the structure (dashboard, templating,
panel types, grid, targets) and :func:`normalise` rewrites its output: panel ``options`` and
``fieldConfig`` are written whole by the helpers here (so no legacy default leaks in), targets and
template variables are reduced to the fields current Grafana reads, and legacy keys are dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import grafanalib.core as g
from grafanalib._gen import DashboardEncoder

SCHEMA_VERSION: Final = 39
"""Grafana 10.4 / 11.x dashboards; the schema in ``../shared/schemas/grafana/`` accepts it."""

DATASOURCE: Final[dict[str, str]] = {"type": "prometheus", "uid": "${datasource}"}

Json = dict[str, Any]

_REPLACE = "__micboard_replace__"
_LEGACY_DASHBOARD_KEYS: Final = ("__inputs", "hideControls", "rows", "sharedCrosshair", "style", "gnetId", "id")
_LEGACY_PANEL_KEYS: Final = (
    "editable", "error", "height", "minSpan", "span", "thresholds", "hideTimeOverride",
    # the Angular table panel's own keys
    "color", "columns", "fontSize", "mappings",
)
_TEMPLATE_KEYS: Final = (
    "name", "label", "type", "query", "definition", "datasource", "regex", "includeAll", "multi", "allValue",
    "refresh", "sort", "hide", "current", "options",
)


# --- field config building blocks ----------------------------------------------------------------------


def steps(base: str, *upper: tuple[float, str]) -> Json:
    """Absolute thresholds: ``base`` colour below the first step, then each (value, colour) from there up."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": c, "value": v} for v, c in upper)],
    }


def above(value: float) -> float:
    """The smallest float above ``value``: Grafana colours a threshold step from ``value >= step``, our
    alerts fire at ``<= threshold``, so the next colour must start just above the threshold."""
    return math.nextafter(value, math.inf)


def value_map(entries: Mapping[int, tuple[str, str]]) -> Json:
    """A value mapping: number -> (text, colour)."""
    return {
        "type": "value",
        "options": {
            str(k): {"text": text, "color": color, "index": i} for i, (k, (text, color)) in enumerate(entries.items())
        },
    }


def by_names(*names: str, **properties: Any) -> Json:
    """A field override for the fields (series legends, table columns) called ``names``.

    Only object-valued properties (``thresholds``, ``color``, ``cell_options``) are offered: the dashboard
    schema types override values and matcher options as objects, so scalar overrides (unit, decimals,
    display name) are expressed through the query and legend instead.
    """
    props = []
    for key, value in properties.items():
        if not isinstance(value, dict):
            raise TypeError(f"override property {key} must be an object, got {value!r}")
        props.append({"id": _PROPERTY_IDS.get(key, key), "value": value})
    return {"matcher": {"id": "byNames", "options": {"mode": "include", "names": list(names)}}, "properties": props}


_PROPERTY_IDS: Final = {"cell_options": "custom.cellOptions"}


def field_config(
    *, unit: str = "none", thresholds: Json | None = None, mappings: Sequence[Json] = (),
    overrides: Sequence[Json] = (), custom: Json | None = None, min_: float | None = None,
    max_: float | None = None, decimals: int | None = None, color: Json | None = None, no_value: str | None = None,
) -> Json:
    """A whole ``fieldConfig``."""
    defaults: Json = {
        "unit": unit,
        "thresholds": thresholds or steps("green"),
        "mappings": list(mappings),
        "color": color or {"mode": "thresholds"},
    }
    for key, value in (("custom", custom), ("min", min_), ("max", max_), ("decimals", decimals),
                       ("noValue", no_value)):
        if value is not None:
            defaults[key] = value
    return {"defaults": defaults, "overrides": list(overrides)}


# --- targets and panels ------------------------------------------------------------------------------


def query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, table: bool = False) -> g.Target:
    """A Prometheus query (``table`` makes an instant query in table format, for table panels)."""
    return g.Target(
        expr=expr, legendFormat=legend, refId=ref, instant=instant or table,
        format="table" if table else "time_series", datasource=DATASOURCE,
    )


def panel(
    kind: type[Any], title: str, targets: Sequence[g.Target], grid: tuple[int, int, int, int], *,
    options: Json, fields: Json, description: str = "", transformations: Sequence[Json] = (), **extra: Any,
) -> Any:
    """A grafanalib panel whose ``options`` and ``fieldConfig`` are exactly ``options`` and ``fields``."""
    x, y, w, h = grid
    return kind(
        title=title, dataSource=DATASOURCE, targets=list(targets), gridPos=g.GridPos(h=h, w=w, x=x, y=y),
        description=description, transformations=list(transformations),
        extraJson={_REPLACE: {"options": options, "fieldConfig": fields, **extra}},
    )


def row(title: str, y: int) -> g.RowPanel:
    """A section heading across the dashboard."""
    return g.RowPanel(title=title, gridPos=g.GridPos(h=1, w=24, x=0, y=y))


def legend(mode: str = "list", placement: str = "bottom", calcs: Sequence[str] = ()) -> Json:
    """Legend options of time series and state timelines."""
    return {"displayMode": mode, "placement": placement, "showLegend": True, "calcs": list(calcs)}


def timeseries_custom(*, fill: int = 10, stack: bool = False, draw: str = "line", threshold_lines: bool = False,
                      span_nulls: bool | int = False) -> Json:
    """``fieldConfig.defaults.custom`` of a time series."""
    return {
        "drawStyle": draw,
        "lineWidth": 2,
        "fillOpacity": fill,
        "showPoints": "never",
        "spanNulls": span_nulls,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line+area" if threshold_lines else "off"},
    }


# --- variables ---------------------------------------------------------------------------------------


def datasource_variable() -> g.Template:
    """The Prometheus data source as the ``datasource`` variable."""
    return g.Template(name="datasource", label="Data source", query="prometheus", type="datasource",
                      default="Prometheus", hide=0)


def query_variable(
    name: str, label: str, query_text: str, *, multi: bool = True, include_all: bool = True, regex: str = "",
    sort: int = 1, hide: int = 0, refresh: int = 2,
) -> g.Template:
    """A variable filled from Prometheus (``label_values`` or ``query_result``)."""
    return g.Template(
        name=name, label=label, query=query_text, dataSource=DATASOURCE, multi=multi, includeAll=include_all,
        allValue=".*" if include_all else None, regex=regex, sort=sort, hide=hide, refresh=refresh,
        default="$__all" if include_all else None,
    )


# --- normalisation -----------------------------------------------------------------------------------


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _keep_null_threshold_base(fields: Json) -> Json:
    # The base step's value must stay JSON null (it means "-Infinity"), which _drop_none would remove.
    def fix(thresholds: Json) -> None:
        for step in thresholds.get("steps", []):
            step.setdefault("value", None)

    fix(fields.get("defaults", {}).get("thresholds", {}))
    for override in fields.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "thresholds":
                fix(prop["value"])
    return fields


def _target(raw: Json) -> Json:
    out: Json = {
        "datasource": DATASOURCE,
        "refId": raw["refId"],
        "expr": raw["expr"],
        "legendFormat": raw.get("legendFormat", ""),
        "instant": bool(raw.get("instant")),
        "range": not raw.get("instant"),
    }
    if raw.get("format") == "table":
        out["format"] = "table"
    return out


def _panel(raw: Json, next_id: list[int]) -> Json:
    replace = raw.pop(_REPLACE, {})
    for key in _LEGACY_PANEL_KEYS:
        raw.pop(key, None)
    raw["id"] = next_id[0]
    next_id[0] += 1
    if raw["type"] == "row":
        heading: Json = {k: raw[k] for k in ("type", "title", "gridPos", "id") if k in raw}
        return heading | {"collapsed": False, "panels": []}
    raw["targets"] = [_target(t) for t in raw.get("targets", [])]
    raw.pop("options", None)
    raw.pop("fieldConfig", None)
    for key in ("interval", "cacheTimeout", "timeFrom", "timeShift", "repeatDirection", "maxPerRow", "repeat"):
        if not raw.get(key):
            raw.pop(key, None)
    if not raw.get("description"):
        raw.pop("description", None)
    raw = _drop_none(raw)
    raw.update(replace)
    _keep_null_threshold_base(raw["fieldConfig"])
    return raw


def _template(raw: Json) -> Json:
    out: Json = {k: raw[k] for k in _TEMPLATE_KEYS if k in raw and raw[k] is not None}
    if out["type"] == "datasource":
        out.pop("current", None)
        out["options"] = []
        out.pop("regex", None)
        return out
    out["definition"] = out["query"]
    out.pop("current", None)
    if out.get("includeAll"):
        out["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    out["options"] = []
    if not out.get("regex"):
        out.pop("regex", None)
    return out


def normalise(dashboard: g.Dashboard) -> Json:
    """grafanalib's dashboard as a current, schema-valid Grafana dashboard model."""
    raw: Json = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    for key in _LEGACY_DASHBOARD_KEYS:
        raw.pop(key, None)
    raw["schemaVersion"] = SCHEMA_VERSION
    raw["timepicker"] = {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]}
    next_id = [1]
    raw["panels"] = [_panel(p, next_id) for p in raw.get("panels", [])]
    raw["templating"] = {"list": [_template(t) for t in raw["templating"]["list"]]}
    raw["annotations"] = {"list": [_drop_none(a) for a in raw.get("annotations", {}).get("list", [])]}
    raw["links"] = [_drop_none(link) for link in raw.get("links", [])]
    return _drop_none_top(raw)


def _drop_none_top(raw: Json) -> Json:
    return {k: v for k, v in raw.items() if v is not None}
