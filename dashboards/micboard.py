"""The four micboard-exporter dashboards, as grafanalib code.

Colours that mean *good / replace / critical* come from :class:`alerts.mixin.MixinConfig`, the same object
the alert rules are generated from, so a tile turns orange exactly when MicBatteryLow can fire and red
when MicBatteryCritical can. Queries use only the exporter's metric catalogue and the recording rules of
``alerts/micboard.rules.yml``.
"""

from __future__ import annotations

from typing import Final

import grafanalib.core as g

from alerts.mixin import (
    BATTERY_CRITICAL,
    BATTERY_LEVEL,
    BATTERY_REPLACE,
    BATTERY_STATE,
    CHANNEL_STATUS,
    RF_BEST,
    STATUS_RECEIVER_OFFLINE,
    STATUS_TRANSMITTER_OFF,
    STATUS_TRANSMITTER_ON,
    WALLBOARD_TILE,
    MixinConfig,
)
from dashboards.panels import (
    Json,
    above,
    by_names,
    datasource_variable,
    field_config,
    legend,
    normalise,
    panel,
    query,
    query_variable,
    row,
    steps,
    timeseries_custom,
    value_map,
)

TAGS: Final = ["micboard", "wireless", "audio"]
UIDS: Final = {
    "wallboard": "micboard-wallboard",
    "channel": "micboard-channel",
    "fleet": "micboard-fleet",
    "exporter": "micboard-exporter",
}

GOOD, REPLACE, CRITICAL, OFF, NEUTRAL = "green", "orange", "red", "#5c5c5c", "blue"
FILTER: Final = 'room=~"$room",device=~"$device"'
CHANNEL: Final = 'device="$device",channel="$channel"'


def _links() -> list[Json]:
    return [{
        "title": "micboard", "type": "dashboards", "tags": ["micboard"], "asDropdown": True, "icon": "external link",
        "tooltip": "", "targetBlank": False, "includeVars": True, "keepTime": True,
    }]


def _dashboard(key: str, title: str, description: str, panels: list[object], variables: list[g.Template],
               *, refresh: str = "30s", time_from: str = "now-6h", annotations: list[Json] | None = None) -> Json:
    dashboard = g.Dashboard(
        title=title, uid=UIDS[key], description=description, tags=TAGS, panels=panels,
        templating=g.Templating(list=variables), refresh=refresh, time=g.Time(time_from, "now"),
        timezone="browser", editable=True, graphTooltip=1, links=_links(),
        annotations=g.Annotations(list=annotations or []),
    )
    return normalise(dashboard)


def _room_device_variables(*, device_multi: bool = True) -> list[g.Template]:
    return [
        datasource_variable(),
        query_variable("room", "Room", "label_values(micboard_device_up, room)"),
        query_variable(
            "device", "Receiver", 'label_values(micboard_device_up{room=~"$room"}, device)',
            multi=device_multi, include_all=device_multi,
        ),
    ]


def _battery_thresholds(c: MixinConfig) -> Json:
    return steps(CRITICAL, (above(c.battery_critical_ratio), REPLACE), (above(c.battery_low_ratio), GOOD))


def _battery_percent_thresholds(c: MixinConfig) -> Json:
    # Multiplied in float64 exactly as PromQL's `ratio * 100` is, so a pack at the threshold stays on it.
    return steps(CRITICAL, (above(c.battery_critical_ratio * 100), REPLACE), (above(c.battery_low_ratio * 100), GOOD))


def _bars_thresholds(c: MixinConfig) -> Json:
    return steps(CRITICAL, (c.battery_critical_bars + 1, REPLACE), (c.battery_low_bars + 1, GOOD))


def _rf_thresholds(c: MixinConfig) -> Json:
    # MicRFSignalWeak fires below the threshold, so the threshold itself is still good.
    return steps(REPLACE, (c.rf_weak_dbm, GOOD))


TABLE_CUSTOM: Final[Json] = {"align": "auto", "inspect": False}

AUDIO_THRESHOLDS: Final = steps(OFF, (-50.0, GOOD), (-12.0, "yellow"), (-3.0, CRITICAL))
"""Metering colours: grey for silence, green for programme level, yellow near full scale, red at clip."""


STATUS_OFFSET: Final = 10_000
"""Added to status codes in multi-value panels so the status mapping cannot match a battery percentage or
a dBm value (per-field mappings would need scalar overrides, which the dashboard schema does not allow)."""
STATUS_MAP: Final = value_map({
    STATUS_OFFSET + STATUS_RECEIVER_OFFLINE: ("RX OFFLINE", CRITICAL),
    STATUS_OFFSET + STATUS_TRANSMITTER_OFF: ("TX OFF", OFF),
    STATUS_OFFSET + STATUS_TRANSMITTER_ON: ("ON", GOOD),
})


# --- 1. wall board -----------------------------------------------------------------------------------


def wallboard(c: MixinConfig) -> Json:
    """Micboard for a TV: a tile per slotted channel, in slot order."""
    tile = f'{WALLBOARD_TILE}{{wallboard_key=~"$tile"}}'
    in_tile = f"and on (device, channel) {tile}"
    heard = "unless on (device, channel) (micboard_transmitter_present == 0)"
    # Each value's legend carries its unit: the schema allows no per-field unit overrides.
    targets = [
        query(f"{CHANNEL_STATUS} + {STATUS_OFFSET}\n{in_tile}", "TX", "A", instant=True),
        query(f"micboard_transmitter_battery_charge_ratio * 100\n{in_tile}", "Battery %", "B", instant=True),
        query(
            "micboard_transmitter_battery_bars unless on (device, channel) micboard_transmitter_battery_charge_ratio"
            f"\n{in_tile}", "Battery bars", "C", instant=True,
        ),
        query(f"micboard_transmitter_battery_runtime_seconds / 60\n{in_tile}", "Minutes left", "D", instant=True),
        query(f"{RF_BEST}\n{heard}\n{in_tile}", "RF dBm", "E", instant=True),
        query(f"micboard_audio_level_dbfs\n{heard}\n{in_tile}", "Audio dBFS", "F", instant=True),
    ]
    fields = field_config(
        decimals=0, thresholds=steps(NEUTRAL), mappings=[STATUS_MAP], no_value="—",
        overrides=[
            by_names("TX", thresholds=steps(OFF)),
            by_names("Battery %", thresholds=_battery_percent_thresholds(c)),
            by_names("Battery bars", thresholds=_bars_thresholds(c)),
            by_names("RF dBm", thresholds=_rf_thresholds(c)),
            by_names("Audio dBFS", thresholds=AUDIO_THRESHOLDS),
        ],
    )
    tile_panel = panel(
        g.Stat, "${tile:text}", targets, (0, 4, 4, 8),
        description="One channel: transmitter state, battery (percent or bars, and time left where the "
        "receiver reports them), best-antenna RF and audio level.",
        options={
            "colorMode": "background", "graphMode": "none", "justifyMode": "center", "textMode": "value_and_name",
            "orientation": "horizontal", "wideLayout": True, "showPercentChange": False,
            "percentChangeColorMode": "standard",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "text": {"titleSize": 18, "valueSize": 30},
        },
        fields=fields, repeat="tile", repeatDirection="h", maxPerRow=6,
    )
    summary_options = {
        "colorMode": "background", "graphMode": "none", "justifyMode": "center", "textMode": "value_and_name",
        "orientation": "auto", "wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "text": {"titleSize": 16, "valueSize": 40},
    }
    summary = [
        panel(g.Stat, "Transmitters on", [query(f"sum(micboard_transmitter_present{{{FILTER}}})", "on", instant=True)],
              (0, 0, 6, 4), options=summary_options, fields=field_config(thresholds=steps(NEUTRAL))),
        panel(g.Stat, "Packs to swap",
              [query(f"sum({BATTERY_STATE}{{{FILTER}}} >= bool {BATTERY_REPLACE})", "low", instant=True)],
              (6, 0, 6, 4), options=summary_options,
              fields=field_config(thresholds=steps(GOOD, (1, REPLACE)))),
        panel(g.Stat, "Packs critical",
              [query(f"sum({BATTERY_STATE}{{{FILTER}}} >= bool {BATTERY_CRITICAL})", "critical", instant=True)],
              (12, 0, 6, 4), options=summary_options,
              fields=field_config(thresholds=steps(GOOD, (1, CRITICAL)))),
        panel(g.Stat, "Receivers offline",
              [query(f"sum(1 - micboard_device_up{{{FILTER}}})", "offline", instant=True)],
              (18, 0, 6, 4), options=summary_options,
              fields=field_config(thresholds=steps(GOOD, (1, CRITICAL)))),
    ]
    variables = [
        *_room_device_variables(),
        query_variable(
            "tile", "Channel", f'query_result({WALLBOARD_TILE}{{{FILTER}}})',
            # query_result lists labels alphabetically: wallboard_key comes right before wallboard_title.
            regex='/wallboard_key="(?<value>[^"]*)",wallboard_title="(?<text>[^"]*)"/',
            sort=3, hide=2,
        ),
    ]
    return _dashboard(
        "wallboard", "Micboard wall",
        "Every wireless channel with a wall-board slot, in slot order, for a screen in kiosk mode "
        "(?kiosk). Colours follow the alert thresholds.",
        [*summary, tile_panel], variables, refresh="5s", time_from="now-5m",
    )


# --- 2. channel detail -------------------------------------------------------------------------------


def channel_detail(c: MixinConfig) -> Json:
    """One channel over time: battery, RF per antenna, audio, link quality, presence, alerts."""
    stat_options = {
        "colorMode": "value", "graphMode": "none", "justifyMode": "auto", "textMode": "auto",
        "orientation": "auto", "wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    name_options = stat_options | {"textMode": "name"}
    ts_options = {"legend": legend(calcs=["lastNotNull", "min"]), "tooltip": {"mode": "multi", "sort": "none"}}
    ts = timeseries_custom
    state_options = {
        "mergeValues": True, "showValue": "auto", "alignValue": "left", "rowHeight": 0.8,
        "legend": legend(), "tooltip": {"mode": "single", "sort": "none"},
    }
    panels: list[object] = [
        panel(g.Stat, "Channel",
              [query(f"micboard_channel_info{{{CHANNEL}}}", "{{performer}} {{name}}", instant=True)],
              (0, 0, 6, 4), options=name_options, fields=field_config(thresholds=steps(NEUTRAL))),
        panel(g.Stat, "Transmitter",
              [query(f"{CHANNEL_STATUS}{{{CHANNEL}}} + {STATUS_OFFSET}", "state", instant=True)],
              (6, 0, 4, 4), options=stat_options, fields=field_config(mappings=[STATUS_MAP], thresholds=steps(OFF))),
        panel(g.Stat, "Battery", [query(f"{BATTERY_LEVEL}{{{CHANNEL}}}", "level", instant=True)],
              (10, 0, 4, 4), options=stat_options,
              fields=field_config(unit="percentunit", decimals=0, thresholds=_battery_thresholds(c))),
        panel(g.Stat, "Model",
              [query(f"micboard_transmitter_info{{{CHANNEL}}}", "{{model}} {{battery_type}}", instant=True)],
              (14, 0, 5, 4), options=name_options, fields=field_config(thresholds=steps(NEUTRAL))),
        panel(g.Stat, "Frequency", [query(f"micboard_channel_frequency_hertz{{{CHANNEL}}}", "MHz", instant=True)],
              (19, 0, 5, 4), options=stat_options,
              fields=field_config(unit="hertz", decimals=3, thresholds=steps(NEUTRAL))),
        row("Transmitter and battery", 4),
        panel(g.StateTimeline, "Presence", [
            query(f"micboard_transmitter_present{{{CHANNEL}}}", "transmitter", "A"),
            query('micboard_device_up{device="$device"} + 10', "receiver", "B"),
            query(f"micboard_transmitter_muted{{{CHANNEL}}} + 20", "mute", "C"),
        ], (0, 5, 24, 5), options=state_options, fields=field_config(
            thresholds=steps(OFF),
            # One mapping for all rows, so each row's values are offset into their own range.
            mappings=[value_map({0: ("off", OFF), 1: ("on", GOOD), 10: ("offline", CRITICAL), 11: ("online", GOOD),
                                 20: ("live", GOOD), 21: ("muted", REPLACE)})],
        ), description="Transmitter on/off, receiver online/offline and mute, as state over time."),
        panel(g.TimeSeries, "Battery", [
            query(f"{BATTERY_LEVEL}{{{CHANNEL}}}", "level", "A"),
        ], (0, 10, 12, 8), options=ts_options, fields=field_config(
            unit="percentunit", min_=0, max_=1, thresholds=_battery_thresholds(c),
            custom=ts(threshold_lines=True), color={"mode": "palette-classic"},
        ), description="Charge where the receiver reports it, else bars / 5; shaded where the battery alerts fire."),
        panel(g.TimeSeries, "Battery time left", [
            query(f"micboard_transmitter_battery_runtime_seconds{{{CHANNEL}}}", "time left", "A"),
        ], (12, 10, 6, 8), options=ts_options, fields=field_config(
            unit="s", min_=0, custom=ts(), color={"mode": "palette-classic"},
        )),
        panel(g.TimeSeries, "Battery temperature", [
            query(f"micboard_transmitter_battery_temperature_celsius{{{CHANNEL}}}", "temperature", "A"),
        ], (18, 10, 6, 8), options=ts_options, fields=field_config(
            unit="celsius", custom=ts(fill=0), color={"mode": "palette-classic"},
        )),
        row("RF", 18),
        panel(g.TimeSeries, "RF level per antenna", [
            query(f"micboard_rf_signal_strength_dbm{{{CHANNEL}}}", "antenna {{antenna}}", "A"),
        ], (0, 19, 12, 8), options=ts_options, fields=field_config(
            unit="dBm", thresholds=_rf_thresholds(c), custom=ts(threshold_lines=True, fill=0),
            color={"mode": "palette-classic"},
        ), description="Shaded below the MicRFSignalWeak threshold."),
        panel(g.TimeSeries, "Link quality", [
            query(f"micboard_rf_link_quality_ratio{{{CHANNEL}}}", "quality", "A"),
        ], (12, 19, 12, 8), options=ts_options, fields=field_config(
            unit="percentunit", min_=0, max_=1, custom=ts(), color={"mode": "palette-classic"},
        )),
        panel(g.StateTimeline, "RF problems and diversity", [
            query(f"micboard_rf_interference_detected{{{CHANNEL}}}", "interference", "A"),
            query(f"micboard_encryption_error{{{CHANNEL}}} + 10", "encryption", "B"),
            query(f"micboard_rf_antenna_active{{{CHANNEL}}} + 20", "antenna {{antenna}}", "C"),
        ], (0, 27, 12, 6), options=state_options, fields=field_config(
            thresholds=steps(GOOD),
            mappings=[value_map({0: ("clear", GOOD), 1: ("INTERFERENCE", CRITICAL), 10: ("key ok", GOOD),
                                 11: ("KEY MISMATCH", CRITICAL), 20: ("idle", OFF), 21: ("active", GOOD)})],
        )),
        panel(g.TimeSeries, "Dropouts and clips", [
            query(f"increase(micboard_rf_dropouts_total{{{CHANNEL}}}[$__rate_interval])", "RF dropouts", "A"),
            query(f"increase(micboard_audio_clips_total{{{CHANNEL}}}[$__rate_interval])", "audio clips", "B"),
        ], (12, 27, 12, 6), options=ts_options, fields=field_config(
            unit="short", custom=ts(draw="bars", fill=80), color={"mode": "palette-classic"}, min_=0,
        )),
        row("Audio", 33),
        panel(g.TimeSeries, "Audio level", [
            query(f"micboard_audio_level_dbfs{{{CHANNEL}}}", "RMS", "A"),
            query(f"micboard_audio_peak_dbfs{{{CHANNEL}}}", "peak", "B"),
        ], (0, 34, 24, 8), options=ts_options, fields=field_config(
            unit="dB", max_=0, custom=ts(fill=0), color={"mode": "palette-classic"},
        )),
    ]
    variables = [
        *_room_device_variables(device_multi=False),
        query_variable("channel", "Channel", 'label_values(micboard_channel_info{device="$device"}, channel)',
                       multi=False, include_all=False, sort=3),
    ]
    alerts_annotation: Json = {
        "name": "Alerts", "enable": True, "hide": False, "iconColor": "red", "datasource": {
            "type": "prometheus", "uid": "${datasource}"},
        "expr": 'ALERTS{alertstate="firing",alertname=~"Mic.*",device="$device",channel=~"$channel|"}',
        "step": "30s", "titleFormat": "{{alertname}}", "textFormat": "{{severity}}", "tagKeys": "severity",
        "useValueForTime": False,
    }
    return _dashboard(
        "channel", "Micboard channel detail",
        "One wireless channel over time: when did it drop, what did the battery and RF do before.",
        panels, variables, time_from="now-3h", annotations=[alerts_annotation],
    )


# --- 3. fleet and batteries --------------------------------------------------------------------------


def fleet(c: MixinConfig) -> Json:
    """Battery health and cycles per pack, packs to replace, runtime distribution, devices by model."""
    names = "* on (device, channel) group_left (name, performer) max by (device, channel, name, performer) " \
            "(micboard_channel_info)"
    stat_options = {
        "colorMode": "background", "graphMode": "none", "justifyMode": "center", "textMode": "value",
        "orientation": "auto", "wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    health_thresholds = steps(CRITICAL, (above(c.pack_health_replace_ratio), GOOD))
    health_pct_thresholds = steps(CRITICAL, (above(c.pack_health_replace_ratio * 100), GOOD))
    table_options = {"showHeader": True, "frameIndex": 0, "cellHeight": "sm",
                     "footer": {"show": False, "reducer": ["sum"]},
                     "sortBy": [{"displayName": "Health %", "desc": False}]}
    bar_options = {
        "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True, "valueMode": "color",
        "namePlacement": "auto", "sizing": "auto", "minVizHeight": 16, "minVizWidth": 8, "maxVizHeight": 300,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "legend": legend(mode="hidden"),
    }
    panels: list[object] = [
        panel(g.Stat, "Packs to replace",
              [query(f"sum(micboard_transmitter_battery_health_ratio{{{FILTER}}} <= bool "
                     f"{c.pack_health_replace_ratio:g})", "", instant=True)],
              (0, 0, 6, 4), options=stat_options, fields=field_config(thresholds=steps(GOOD, (1, REPLACE))),
              description=f"Packs whose health is at or below {c.pack_health_replace_ratio:.0%} of a new pack."),
        panel(g.Stat, "Transmitters in use", [query(f"sum(micboard_transmitter_present{{{FILTER}}})", "",
                                                    instant=True)],
              (6, 0, 6, 4), options=stat_options, fields=field_config(thresholds=steps(NEUTRAL))),
        panel(g.Stat, "Receivers", [query(f"count(micboard_device_up{{{FILTER}}})", "", instant=True)],
              (12, 0, 6, 4), options=stat_options, fields=field_config(thresholds=steps(NEUTRAL))),
        panel(g.Stat, "Median battery time left",
              [query(f"quantile(0.5, micboard_transmitter_battery_runtime_seconds{{{FILTER}}})", "", instant=True)],
              (18, 0, 6, 4), options=stat_options, fields=field_config(unit="s", thresholds=steps(NEUTRAL))),
        panel(g.Table, "Battery packs by health", [
            query(f"micboard_transmitter_battery_health_ratio{{{FILTER}}} * 100\n{names}", "", "A", table=True),
            query(f"micboard_transmitter_battery_cycles{{{FILTER}}}", "", "B", table=True),
            query(f"micboard_transmitter_battery_temperature_celsius{{{FILTER}}}", "", "C", table=True),
            query(f"{BATTERY_LEVEL}{{{FILTER}}} * 100", "", "D", table=True),
        ], (0, 4, 14, 12), options=table_options, transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True, "instance": True, "slot": True},
                "renameByName": {"Value #A": "Health %", "Value #B": "Cycles", "Value #C": "Temperature °C",
                                 "Value #D": "Charge %", "name": "Channel", "performer": "Performer",
                                 "device": "Receiver", "channel": "Ch", "room": "Room"},
                "indexByName": {"Performer": 0, "Channel": 1, "Receiver": 2, "Ch": 3, "Room": 4},
            }},
        ], fields=field_config(
            decimals=0, thresholds=steps(NEUTRAL), custom=TABLE_CUSTOM,
            overrides=[
                by_names("Health %", thresholds=health_pct_thresholds,
                         cell_options={"type": "color-background", "mode": "basic"}),
                by_names("Charge %", thresholds=_battery_percent_thresholds(c), cell_options={"type": "color-text"}),
            ],
        ), description="Every pack in a transmitter now, worst health first; red ones are due for replacement."),
        panel(g.BarGauge, "Charge cycles per pack", [
            query(f"sort_desc(micboard_transmitter_battery_cycles{{{FILTER}}}\n{names})",
                  "{{performer}} {{name}} ({{device}}/{{channel}})", instant=True),
        ], (14, 4, 10, 12), options=bar_options, fields=field_config(thresholds=steps(NEUTRAL), min_=0)),
        panel(g.Histogram, "Battery time left across packs", [
            query(f"micboard_transmitter_battery_runtime_seconds{{{FILTER}}}", "{{device}}/{{channel}}",
                  instant=True),
        ], (0, 16, 12, 8), options={"bucketCount": 10, "combine": True, "legend": legend(mode="hidden"),
                                    "tooltip": {"mode": "single", "sort": "none"}},
            fields=field_config(unit="s", color={"mode": "palette-classic"},
                                custom={"fillOpacity": 80, "lineWidth": 1, "gradientMode": "none"}),
            description="How many packs have how much time left: a bar near zero is a pack to swap before the show."),
        panel(g.TimeSeries, "Battery health over time", [
            query(f"micboard_transmitter_battery_health_ratio{{{FILTER}}}\n{names}",
                  "{{name}} ({{device}}/{{channel}})"),
        ], (12, 16, 12, 8), options={"legend": legend(mode="table", placement="right", calcs=["lastNotNull"]),
                                      "tooltip": {"mode": "multi", "sort": "desc"}},
            fields=field_config(unit="percentunit", max_=1, thresholds=health_thresholds,
                                custom=timeseries_custom(fill=0, threshold_lines=True),
                                color={"mode": "palette-classic"})),
        panel(g.Table, "Receivers by model and firmware", [
            query(f"count by (manufacturer, model, firmware) (micboard_device_info{{{FILTER}}})", "", table=True),
        ], (0, 24, 12, 8), options=table_options | {"sortBy": [{"displayName": "Receivers", "desc": True}]},
            transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True}, "renameByName": {"Value": "Receivers", "manufacturer": "Manufacturer",
                                                                "model": "Model", "firmware": "Firmware"}}}],
            fields=field_config(thresholds=steps(NEUTRAL), custom=TABLE_CUSTOM)),
        panel(g.Table, "Transmitters by model and battery", [
            query(f"count by (model, battery_type) (micboard_transmitter_info{{{FILTER}}})", "", table=True),
        ], (12, 24, 12, 8), options=table_options | {"sortBy": [{"displayName": "Transmitters", "desc": True}]},
            transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True}, "renameByName": {"Value": "Transmitters", "model": "Model",
                                                                "battery_type": "Battery"}}}],
            fields=field_config(thresholds=steps(NEUTRAL), custom=TABLE_CUSTOM)),
    ]
    return _dashboard(
        "fleet", "Micboard fleet and batteries",
        "Which packs are ageing, how much runtime the fleet has left, and what hardware and firmware is out there.",
        panels, _room_device_variables(), time_from="now-7d", refresh="1m",
    )


# --- 4. exporter health ------------------------------------------------------------------------------


def exporter_health(c: MixinConfig) -> Json:
    """Is the exporter keeping up: devices up, poll durations, errors, skipped devices, cycle time, reloads."""
    inst = 'instance=~"$instance"'
    stat_options = {
        "colorMode": "background", "graphMode": "area", "justifyMode": "center", "textMode": "value",
        "orientation": "auto", "wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    ts_options = {"legend": legend(calcs=["lastNotNull", "max"]), "tooltip": {"mode": "multi", "sort": "desc"}}
    ts = timeseries_custom
    panels: list[object] = [
        panel(g.Stat, "Receivers up", [query(f"sum(micboard_device_up{{{inst}}})", "", instant=True)],
              (0, 0, 4, 4), options=stat_options, fields=field_config(thresholds=steps(NEUTRAL))),
        panel(g.Stat, "Receivers down", [query(f"sum(1 - micboard_device_up{{{inst}}})", "", instant=True)],
              (4, 0, 4, 4), options=stat_options, fields=field_config(thresholds=steps(GOOD, (1, CRITICAL)))),
        panel(g.Stat, "Skipped (breaker open)",
              [query(f'sum(micboard_poll_cycle_devices{{{inst},result="skipped"}})', "", instant=True)],
              (8, 0, 4, 4), options=stat_options, fields=field_config(thresholds=steps(GOOD, (1, REPLACE)))),
        panel(g.Stat, "Last poll cycle", [query(f"max(micboard_poll_cycle_duration_seconds{{{inst}}})", "",
                                                instant=True)],
              (12, 0, 4, 4), options=stat_options, fields=field_config(unit="s", thresholds=steps(NEUTRAL))),
        panel(g.Stat, "Config", [
            query(f"min(micboard_config_last_reload_successful{{{inst}}})", "", "A", instant=True),
        ], (16, 0, 4, 4), options=stat_options | {"graphMode": "none"}, fields=field_config(
            mappings=[value_map({0: ("RELOAD FAILED", CRITICAL), 1: ("OK", GOOD)})], thresholds=steps(GOOD))),
        panel(g.Stat, "Config loaded", [
            query(f"max(micboard_config_last_reload_success_timestamp_seconds{{{inst}}}) * 1000", "", instant=True),
        ], (20, 0, 4, 4), options=stat_options | {"graphMode": "none"},
            fields=field_config(unit="dateTimeFromNow", thresholds=steps(NEUTRAL))),
        panel(g.StateTimeline, "Receivers up", [
            query(f"micboard_device_up{{{inst},{FILTER}}}", "{{device}}"),
        ], (0, 4, 24, 8), options={
            "mergeValues": True, "showValue": "never", "alignValue": "left", "rowHeight": 0.9,
            "legend": legend(mode="hidden"), "tooltip": {"mode": "single", "sort": "none"},
        }, fields=field_config(mappings=[value_map({0: ("down", CRITICAL), 1: ("up", GOOD)})],
                               thresholds=steps(OFF))),
        panel(g.TimeSeries, "Poll duration by plugin", [
            query("histogram_quantile(0.95, sum by (plugin, le) "
                  f"(rate(micboard_poll_duration_seconds_bucket{{{inst}}}[$__rate_interval])))", "p95 {{plugin}}", "A"),
            query("histogram_quantile(0.5, sum by (plugin, le) "
                  f"(rate(micboard_poll_duration_seconds_bucket{{{inst}}}[$__rate_interval])))", "p50 {{plugin}}", "B"),
        ], (0, 12, 12, 8), options=ts_options, fields=field_config(unit="s", custom=ts(fill=0),
                                                                   color={"mode": "palette-classic"})),
        panel(g.TimeSeries, "Poll errors by reason", [
            query(f"sum by (reason) (rate(micboard_poll_errors_total{{{inst},{FILTER}}}[$__rate_interval])) * 60",
                  "{{reason}}"),
        ], (12, 12, 12, 8), options=ts_options, fields=field_config(
            unit="short", custom=ts(stack=True, fill=40), color={"mode": "palette-classic"}),
            description="Failed polls per minute (timeout, unreachable, protocol, auth, internal)."),
        panel(g.TimeSeries, "Devices per poll cycle", [
            query(f"sum by (result) (micboard_poll_cycle_devices{{{inst}}})", "{{result}}"),
        ], (0, 20, 12, 8), options=ts_options, fields=field_config(
            custom=ts(stack=True, fill=40), color={"mode": "palette-classic"},
            overrides=[by_names("failed", color={"mode": "fixed", "fixedColor": CRITICAL}),
                       by_names("skipped", color={"mode": "fixed", "fixedColor": REPLACE}),
                       by_names("successful", color={"mode": "fixed", "fixedColor": GOOD})])),
        panel(g.TimeSeries, "Poll cycle time", [
            query(f"max(micboard_poll_cycle_duration_seconds{{{inst}}})", "cycle time", "A"),
        ], (12, 20, 6, 8), options=ts_options, fields=field_config(
            unit="s", min_=0, custom=ts(fill=0), color={"mode": "palette-classic"})),
        panel(g.TimeSeries, "Poll cycle overruns", [
            query(f"sum(increase(micboard_poll_cycle_overruns_total{{{inst}}}[$__rate_interval]))", "overruns", "A"),
        ], (18, 20, 6, 8), options=ts_options, fields=field_config(
            unit="short", min_=0, custom=ts(draw="bars", fill=80), color={"mode": "palette-classic"}),
            description="Cycles that took longer than the poll interval."),
        panel(g.BarGauge, "Data age per receiver", [
            query(f"sort_desc(time() - micboard_device_last_success_timestamp_seconds{{{inst},{FILTER}}})",
                  "{{device}}", instant=True),
        ], (0, 28, 12, 8), options={
            "displayMode": "basic", "orientation": "horizontal", "showUnfilled": True, "valueMode": "color",
            "namePlacement": "auto", "sizing": "auto", "minVizHeight": 16, "minVizWidth": 8, "maxVizHeight": 300,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "legend": legend(mode="hidden"),
        }, fields=field_config(unit="s", min_=0, thresholds=steps(GOOD, (c.stale_after_seconds, CRITICAL))),
            description="Seconds since the last successful poll; red where MicDeviceDataStale can fire."),
        panel(g.Table, "Exporter build", [
            query("micboard_exporter_build_info", "", table=True),
        ], (12, 28, 12, 8), options={"showHeader": True, "frameIndex": 0, "cellHeight": "sm",
                                     "footer": {"show": False, "reducer": ["sum"]}},
            transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value": True, "__name__": True},
                "renameByName": {"version": "Version", "python": "Python", "instance": "Instance", "job": "Job"}}}],
            fields=field_config(thresholds=steps(NEUTRAL), custom=TABLE_CUSTOM)),
    ]
    variables = [
        datasource_variable(),
        query_variable("instance", "Exporter", "label_values(micboard_exporter_build_info, instance)"),
        query_variable("room", "Room", 'label_values(micboard_device_up{instance=~"$instance"}, room)'),
        query_variable("device", "Receiver",
                       'label_values(micboard_device_up{instance=~"$instance",room=~"$room"}, device)'),
    ]
    return _dashboard(
        "exporter", "Micboard exporter health",
        "Is micboard-exporter keeping up with the fleet: receivers up, poll timing and errors, breaker, reloads.",
        panels, variables, time_from="now-6h",
    )


def all_dashboards(c: MixinConfig | None = None) -> dict[str, Json]:
    """File stem -> dashboard model."""
    c = c or MixinConfig()
    return {
        "micboard-wallboard": wallboard(c),
        "micboard-channel": channel_detail(c),
        "micboard-fleet": fleet(c),
        "micboard-exporter": exporter_health(c),
    }
