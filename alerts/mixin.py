"""Recording and alerting rules for wireless microphone fleets, in the spirit of a monitoring mixin.

Every threshold, ``for:`` duration and selector is a field of :class:`MixinConfig`; :func:`rule_groups`
turns a config into the Prometheus rule groups that ``alerts/generate.py`` writes. The dashboards import the
same config so that the wall board's colours change exactly where the alerts fire.

Battery thresholds default to the exporter's own event thresholds
(:mod:`micboard_exporter.config_types`): *low* is charge <= 25 %, or <= 2 bars on a device that reports no
charge; *critical* is charge <= 10 %, or <= 1 bar without charge. The PromQL below stays within
Prometheus 2.42 (the Debian version the tests run against).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from micboard_exporter.config_types import (
    DEFAULT_BATTERY_CRITICAL_BARS,
    DEFAULT_BATTERY_CRITICAL_RATIO,
    DEFAULT_BATTERY_LOW_BARS,
    DEFAULT_BATTERY_LOW_RATIO,
)

ALERT_NAMES: Final[tuple[str, ...]] = (
    "MicBatteryLow",
    "MicBatteryCritical",
    "MicTransmitterLost",
    "MicRFSignalWeak",
    "MicRFDropouts",
    "MicInterferenceDetected",
    "MicEncryptionError",
    "MicAudioClipping",
    "MicReceiverDown",
    "MicDeviceDataStale",
    "MicExporterDown",
    "MicPollErrorsHigh",
    "MicConfigReloadFailed",
)

CHANNEL_ALERTS: Final[frozenset[str]] = frozenset(
    {
        "MicBatteryLow", "MicBatteryCritical", "MicTransmitterLost", "MicRFSignalWeak", "MicRFDropouts",
        "MicInterferenceDetected", "MicEncryptionError", "MicAudioClipping",
    }
)
"""Alerts about one channel; their labels carry ``device`` and ``channel`` plus the channel's names."""

# Names of the recording rules (level:metric:operations). Dashboards query these names.
BATTERY_LEVEL: Final = "micboard:transmitter_battery_level:ratio"
BATTERY_STATE: Final = "micboard:transmitter_battery_state:code"
RF_BEST: Final = "micboard:rf_signal_strength_dbm:max"
WALLBOARD_TILE: Final = "micboard:wallboard_tile:info"
CHANNEL_STATUS: Final = "micboard:channel_status:code"
RECORDING_RULES: Final[tuple[str, ...]] = (BATTERY_LEVEL, BATTERY_STATE, RF_BEST, WALLBOARD_TILE, CHANNEL_STATUS)

# Values of BATTERY_STATE and CHANNEL_STATUS (the wall board maps them to words and colours).
BATTERY_GOOD, BATTERY_REPLACE, BATTERY_CRITICAL = 0, 1, 2
STATUS_RECEIVER_OFFLINE, STATUS_TRANSMITTER_OFF, STATUS_TRANSMITTER_ON = 0, 1, 2

_DURATION = re.compile(r"^(?:\d+[smhd])+$")

DEFAULT_FOR: Final[Mapping[str, str]] = {
    # Long enough that one odd sample (a bar flickering on a pack at the boundary) never pages anyone,
    # short enough that the A2 still has time to swap the pack before it dies.
    "MicBatteryLow": "2m",
    "MicBatteryCritical": "1m",
    "MicTransmitterLost": "30s",
    "MicRFSignalWeak": "1m",
    # Counting alerts already look back over a window; a `for:` would only delay them.
    "MicRFDropouts": "0s",
    "MicInterferenceDetected": "1m",
    "MicEncryptionError": "1m",
    "MicAudioClipping": "0s",
    "MicReceiverDown": "1m",
    "MicDeviceDataStale": "1m",
    "MicExporterDown": "1m",
    "MicPollErrorsHigh": "5m",
    "MicConfigReloadFailed": "5m",
}


@dataclass(frozen=True)
class MixinConfig:
    """Everything a site may want to tune. The defaults match the exporter's own defaults."""

    exporter_selector: str = 'job="micboard"'
    """Selects the exporter's scrape targets in ``up`` (for MicExporterDown)."""
    metric_selector: str = ""
    """Extra label matchers put on every ``micboard_*`` selector, e.g. ``job="micboard"``; empty: none."""
    battery_low_ratio: float = DEFAULT_BATTERY_LOW_RATIO
    battery_low_bars: int = DEFAULT_BATTERY_LOW_BARS
    battery_critical_ratio: float = DEFAULT_BATTERY_CRITICAL_RATIO
    battery_critical_bars: int = DEFAULT_BATTERY_CRITICAL_BARS
    rf_weak_dbm: float = -80.0
    """Best antenna below this is weak: most digital receivers keep a clean link down to about -90 dBm, so
    -80 dBm leaves a 10 dB fade margin before audio artefacts."""
    rf_dropouts: int = 3
    rf_dropouts_window: str = "10m"
    audio_clips: int = 3
    audio_clips_window: str = "5m"
    transmitter_lost_lookback: str = "10m"
    """A transmitter that was on within this window and is now off counts as lost (see MicTransmitterLost)."""
    stale_after_seconds: float = 120.0
    poll_errors_per_minute: float = 1.0
    poll_errors_window: str = "5m"
    pack_health_replace_ratio: float = 0.8
    """Packs whose health (capacity vs. new) is at or below this are listed for replacement (dashboards)."""
    runbook_base_url: str = "https://github.com/micboard-exporter/micboard-exporter/blob/main/docs/runbooks.md"
    for_durations: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FOR))

    def __post_init__(self) -> None:
        unknown = set(self.for_durations) - set(ALERT_NAMES)
        missing = set(ALERT_NAMES) - set(self.for_durations)
        if unknown or missing:
            raise ValueError(f"for_durations: unknown {sorted(unknown)}, missing {sorted(missing)}")
        durations = {
            "rf_dropouts_window": self.rf_dropouts_window,
            "audio_clips_window": self.audio_clips_window,
            "transmitter_lost_lookback": self.transmitter_lost_lookback,
            "poll_errors_window": self.poll_errors_window,
            **{f"for_durations[{k}]": v for k, v in self.for_durations.items()},
        }
        for name, value in durations.items():
            if not _DURATION.match(value):
                raise ValueError(f"{name}: {value!r} is not a Prometheus duration such as 30s or 5m")
        if not self.battery_critical_ratio < self.battery_low_ratio:
            raise ValueError("battery_critical_ratio must be below battery_low_ratio")
        if not self.battery_critical_bars < self.battery_low_bars:
            raise ValueError("battery_critical_bars must be below battery_low_bars")

    def with_for(self, duration: str) -> MixinConfig:
        """The same rules with every ``for:`` set to ``duration`` (end-to-end tests use a few seconds)."""
        return replace(self, for_durations=dict.fromkeys(ALERT_NAMES, duration))

    def m(self, name: str) -> str:
        """A selector for metric ``name`` with :attr:`metric_selector` applied."""
        return f"{name}{{{self.metric_selector}}}" if self.metric_selector else name

    def runbook(self, alert: str) -> str:
        """The runbook URL of ``alert``: its section in docs/runbooks.md (GitHub's heading anchor)."""
        return f"{self.runbook_base_url}#{alert.lower()}"


# --- templates -----------------------------------------------------------------------------------------

CHANNEL_PHRASE: Final = (
    '{{ if $labels.performer }}{{ $labels.performer }} on {{ end }}"{{ $labels.name }}" '
    "(channel {{ $labels.channel }} of {{ $labels.device }}"
    "{{ if $labels.room }} in {{ $labels.room }}{{ end }})"
)
"""How every channel alert names its channel, e.g. ``Pastor Mike on "Vocal 1" (channel 1 of rack-a in main-hall)``."""

DEVICE_PHRASE: Final = "{{ $labels.device }}{{ if $labels.room }} in {{ $labels.room }}{{ end }}"


def _with_channel_names(c: MixinConfig, expr: str) -> str:
    """Join a (device, channel) vector with the channel's names so alerts can name the channel.

    ``max by`` collapses identical info series from HA exporter pairs into one, which keeps the join
    many-to-one; channel series only exist together with their ``micboard_channel_info``.
    """
    return (
        f"(\n{_indent(expr)}\n)\n"
        "* on (device, channel) group_left (name, performer, slot)\n"
        f"  max by (device, channel, name, performer, slot) ({c.m('micboard_channel_info')})"
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _fmt(value: float) -> str:
    """A threshold as PromQL writes it (no trailing .0 on integers)."""
    return f"{value:g}"


# --- recording rules ---------------------------------------------------------------------------------


def recording_rules(c: MixinConfig) -> list[dict[str, Any]]:
    """Normalised battery, best-antenna RF and the wall board's tiles and states."""
    charge = c.m("micboard_transmitter_battery_charge_ratio")
    bars = c.m("micboard_transmitter_battery_bars")

    def battery_at_or_below(ratio: float, bar_count: int) -> str:
        # Charge decides where the device reports it; bars only count on devices without charge.
        return f"({charge} <= {_fmt(ratio)}) or ({bars} <= {bar_count} unless {charge})"

    battery_state = (
        f"0 * ({battery_at_or_below(c.battery_critical_ratio, c.battery_critical_bars)}) + {BATTERY_CRITICAL}\n"
        f"or\n0 * ({battery_at_or_below(c.battery_low_ratio, c.battery_low_bars)}) + {BATTERY_REPLACE}\n"
        f"or\n0 * {BATTERY_LEVEL}"
    )
    channel_info = c.m("micboard_channel_info")
    tile_selector = (
        f'{channel_info[:-1]},slot!=""}}' if c.metric_selector else f'{channel_info}{{slot!=""}}'
    )
    # The tile title is "slot · performer", falling back to the channel name, then to device/channel.
    tile = (
        'label_join(\n  label_join(\n    label_replace(\n      label_replace(\n        label_join(\n'
        f"          {tile_selector},\n"
        '          "wallboard_who", "/", "device", "channel"),\n'
        '        "wallboard_who", "$1", "name", "(.+)"),\n'
        '      "wallboard_who", "$1", "performer", "(.+)"),\n'
        '    "wallboard_title", " · ", "slot", "wallboard_who"),\n'
        '  "wallboard_key", "/", "device", "channel")'
    )
    device_down = f"({c.m('micboard_device_up')} == 0)"
    return [
        {
            "record": BATTERY_LEVEL,
            "expr": f"{charge}\nor\n{bars} / 5",
        },
        {"record": BATTERY_STATE, "expr": battery_state},
        {"record": RF_BEST, "expr": f"max without (antenna) ({c.m('micboard_rf_signal_strength_dbm')})"},
        {
            # Channel series vanish while their receiver is down; the rule keeps its own last tiles for
            # such receivers so the wall board can show them as offline instead of dropping them.
            "record": WALLBOARD_TILE,
            "expr": (
                f"label_replace(\n{_indent(tile)},\n"
                '  "wallboard_who", "", "wallboard_who", ".*")\n'
                f"or on (device, channel)\n({WALLBOARD_TILE} and on (device) {device_down})"
            ),
        },
        {
            "record": CHANNEL_STATUS,
            "expr": (
                f"{c.m('micboard_transmitter_present')} + {STATUS_TRANSMITTER_OFF}\n"
                f"or on (device, channel)\n"
                # 0 * tile == STATUS_RECEIVER_OFFLINE
                f"0 * ({WALLBOARD_TILE} and on (device) {device_down})"
            ),
        },
    ]


# --- alerts ------------------------------------------------------------------------------------------


def _alert(
    c: MixinConfig, name: str, expr: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if c.for_durations[name] not in ("0s", "0m"):
        rule["for"] = c.for_durations[name]
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description, "runbook_url": c.runbook(name)}
    return rule


def alerting_rules(c: MixinConfig) -> list[dict[str, Any]]:
    """The thirteen Mic* alerts."""
    present = c.m("micboard_transmitter_present")
    up = c.m("micboard_device_up")
    not_switched_off = f"unless on (device, channel) ({present} == 0)"
    lookback = c.transmitter_lost_lookback
    return [
        _alert(
            c, "MicBatteryLow",
            _with_channel_names(c, f"{BATTERY_LEVEL}\nand {BATTERY_STATE} >= {BATTERY_REPLACE}\n{not_switched_off}"),
            "warning", "A wireless transmitter battery is low.",
            f"{CHANNEL_PHRASE}: battery at {{{{ $value | humanizePercentage }}}}; "
            "swap or charge the pack at the next break.",
        ),
        _alert(
            c, "MicBatteryCritical",
            _with_channel_names(c, f"{BATTERY_LEVEL}\nand {BATTERY_STATE} >= {BATTERY_CRITICAL}\n{not_switched_off}"),
            "critical", "A wireless transmitter battery is about to die.",
            f"{CHANNEL_PHRASE}: battery at {{{{ $value | humanizePercentage }}}}; "
            "the pack can die at any moment, swap it now.",
        ),
        _alert(
            c, "MicTransmitterLost",
            # Lost, not parked: it was on within the lookback, it is now reported off, its receiver is up,
            # and it was not muted when last heard (a pack muted before switching off was put away on purpose).
            _with_channel_names(
                c, f"({present} == 0)\n"
                f"and on (device, channel) (max_over_time({present}[{lookback}]) == 1)\n"
                f"and on (device) ({up} == 1)\n"
                f"unless on (device, channel) (last_over_time({c.m('micboard_transmitter_muted')}[{lookback}]) == 1)"
            ),
            "critical", "A wireless transmitter that was in use has disappeared.",
            f"{CHANNEL_PHRASE}: the transmitter was on within the last {lookback} and the receiver no longer "
            "hears it (dead battery, pack switched off by mistake, or out of range).",
        ),
        _alert(
            c, "MicRFSignalWeak",
            _with_channel_names(
                c, f"{RF_BEST} < {_fmt(c.rf_weak_dbm)}\nand on (device, channel) ({present} == 1)"
            ),
            "warning", "A wireless link has a weak RF signal.",
            f"{CHANNEL_PHRASE}: best antenna at {{{{ $value | printf \"%.0f\" }}}} dBm "
            f"(below {_fmt(c.rf_weak_dbm)} dBm); dropouts are likely.",
        ),
        _alert(
            c, "MicRFDropouts",
            _with_channel_names(
                c, f"increase({c.m('micboard_rf_dropouts_total')}[{c.rf_dropouts_window}]) >= {c.rf_dropouts}"
            ),
            "warning", "A wireless link keeps dropping out.",
            f"{CHANNEL_PHRASE}: {{{{ $value | printf \"%.0f\" }}}} RF dropouts in the last "
            f"{c.rf_dropouts_window}.",
        ),
        _alert(
            c, "MicInterferenceDetected",
            _with_channel_names(c, f"{c.m('micboard_rf_interference_detected')} == 1"),
            "warning", "A receiver reports RF interference.",
            f"{CHANNEL_PHRASE}: the receiver detects interference on its frequency.",
        ),
        _alert(
            c, "MicEncryptionError",
            _with_channel_names(c, f"{c.m('micboard_encryption_error')} == 1"),
            "critical", "A receiver reports an encryption key mismatch.",
            f"{CHANNEL_PHRASE}: transmitter and receiver do not share the encryption key; "
            "the channel passes no audio.",
        ),
        _alert(
            c, "MicAudioClipping",
            _with_channel_names(
                c, f"increase({c.m('micboard_audio_clips_total')}[{c.audio_clips_window}]) >= {c.audio_clips}"
            ),
            "warning", "A wireless channel is clipping.",
            f"{CHANNEL_PHRASE}: {{{{ $value | printf \"%.0f\" }}}} audio overloads in the last "
            f"{c.audio_clips_window}; check transmitter gain and pad.",
        ),
        _alert(
            c, "MicReceiverDown",
            f"{up} == 0",
            "critical", "A wireless receiver is not answering.",
            f"Receiver {DEVICE_PHRASE} does not answer polls; its channels are not monitored. "
            '{{ with printf "last_over_time(micboard_channel_info{device=%q}[1h])" $labels.device | query }}'
            'Channels last seen on it: {{ range $i, $s := sortByLabel "channel" . }}'
            '{{ if $i }}, {{ end }}"{{ $s.Labels.name }}"{{ end }}.'
            "{{ end }}",
        ),
        _alert(
            c, "MicDeviceDataStale",
            f"time() - {c.m('micboard_device_last_success_timestamp_seconds')} > {_fmt(c.stale_after_seconds)}\n"
            f"and {up} == 1",
            "warning", "Data from a wireless receiver is stale.",
            f"Receiver {DEVICE_PHRASE} last answered a poll {{{{ $value | humanizeDuration }}}} ago although it "
            "counts as up; the values on the wall board are old.",
        ),
        _alert(
            c, "MicExporterDown",
            f"up{{{c.exporter_selector}}} == 0\nor\nabsent(up{{{c.exporter_selector}}})",
            "critical", "The micboard exporter cannot be scraped.",
            "Prometheus cannot scrape micboard-exporter{{ with $labels.instance }} at {{ . }}{{ end }}; "
            "no wireless channel is monitored.",
        ),
        _alert(
            c, "MicPollErrorsHigh",
            f"sum without (reason) (rate({c.m('micboard_poll_errors_total')}[{c.poll_errors_window}])) * 60\n"
            f"> {_fmt(c.poll_errors_per_minute)}",
            "warning", "Polls of a wireless receiver keep failing.",
            f"Receiver {DEVICE_PHRASE}: {{{{ $value | printf \"%.1f\" }}}} failed polls per minute over the last "
            f"{c.poll_errors_window}.",
        ),
        _alert(
            c, "MicConfigReloadFailed",
            f"{c.m('micboard_config_last_reload_successful')} == 0",
            "warning", "The micboard exporter rejected its configuration file.",
            "micboard-exporter{{ with $labels.instance }} at {{ . }}{{ end }} rejected the last config reload "
            "and keeps running the previous config.",
        ),
    ]


def rule_groups(c: MixinConfig | None = None) -> dict[str, Any]:
    """The whole rule file as a mapping ready for YAML."""
    c = c or MixinConfig()
    return {
        "groups": [
            {"name": "micboard.rules", "rules": recording_rules(c)},
            {"name": "micboard.alerts", "rules": alerting_rules(c)},
        ]
    }
