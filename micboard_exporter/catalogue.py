"""The metric catalogue: every device-level metric the exporter serves, as data.

A new metric is one :class:`MetricSpec` here plus the field in :mod:`micboard_exporter.model`.
``docs/metrics.md`` is generated from this tuple (``make docs``) and the dashboards and alert rules use only
these names. Exporter self-metrics (poll durations, cycle results, reloads, build info) live in
:mod:`micboard_exporter.selfmetrics`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from micboard_exporter.model import ChannelSnapshot

CACHED = " Cached from the last poll or pushed update of the device."


class Level(enum.Enum):
    """What one sample describes, and so which labels it carries."""

    DEVICE = "device"
    CHANNEL = "channel"
    ANTENNA = "antenna"


ChannelValue = Callable[[ChannelSnapshot], float | bool | int | None]
AntennaValues = Callable[[ChannelSnapshot], dict[str, float] | dict[str, bool]]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family. ``value`` gives a channel's sample (None: no sample); device-level and info
    families are rendered by :mod:`micboard_exporter.exposition` itself."""

    name: str
    help: str
    type: str
    level: Level
    unit: str = ""
    labels: tuple[str, ...] = ()
    """Labels beyond device (+config labels), channel and antenna."""
    value: ChannelValue | None = None
    antenna_values: AntennaValues | None = None


def _tx(attr: str) -> ChannelValue:
    def get(ch: ChannelSnapshot) -> float | bool | int | None:
        tx = ch.transmitter
        return None if tx is None else getattr(tx, attr)

    return get


def _present(ch: ChannelSnapshot) -> bool | None:
    return (ch.transmitter is not None) if ch.transmitter_known else None


CATALOGUE: Final[tuple[MetricSpec, ...]] = (
    MetricSpec("micboard_device_up", "1 if the last poll of the device succeeded, 0 if it failed.", "gauge",
               Level.DEVICE),
    MetricSpec("micboard_device_info", "Device identity (value 1): manufacturer, model, firmware, serial, host.",
               "gauge", Level.DEVICE, labels=("manufacturer", "model", "firmware", "serial", "host")),
    MetricSpec("micboard_device_last_success_timestamp_seconds",
               "Unix time of the last successful poll of the device (freshness).", "gauge", Level.DEVICE, "seconds"),
    MetricSpec("micboard_poll_errors_total", "Failed polls of the device by reason "
               "(timeout, unreachable, protocol, auth, internal).", "counter", Level.DEVICE, labels=("reason",)),
    MetricSpec("micboard_events_total", "State-change events seen on the device (device_up, transmitter_off, "
               "battery_low, rf_dropout, ...).", "counter", Level.DEVICE, labels=("event",)),
    MetricSpec("micboard_channel_info", "Channel name (value 1), with the configured wall-board slot and "
               "performer name." + CACHED, "gauge", Level.CHANNEL, labels=("name", "slot", "performer")),
    MetricSpec("micboard_channel_frequency_hertz", "Carrier frequency of the channel." + CACHED, "gauge",
               Level.CHANNEL, "hertz", value=lambda ch: ch.frequency_hertz),
    MetricSpec("micboard_transmitter_present", "1 when a transmitter is linked and on, 0 when none." + CACHED,
               "gauge", Level.CHANNEL, value=_present),
    MetricSpec("micboard_transmitter_info", "Transmitter identity (value 1): model and battery type." + CACHED,
               "gauge", Level.CHANNEL, labels=("model", "battery_type")),
    MetricSpec("micboard_transmitter_battery_bars", "Battery bars 0-5 as the receiver shows them." + CACHED,
               "gauge", Level.CHANNEL, value=_tx("battery_bars")),
    MetricSpec("micboard_transmitter_battery_charge_ratio", "Battery charge 0-1." + CACHED, "gauge",
               Level.CHANNEL, "ratio", value=_tx("battery_charge_ratio")),
    MetricSpec("micboard_transmitter_battery_runtime_seconds", "Remaining battery runtime." + CACHED, "gauge",
               Level.CHANNEL, "seconds", value=_tx("battery_runtime_seconds")),
    MetricSpec("micboard_transmitter_battery_health_ratio", "Battery health 0-1 (capacity vs. new)." + CACHED,
               "gauge", Level.CHANNEL, "ratio", value=_tx("battery_health_ratio")),
    MetricSpec("micboard_transmitter_battery_cycles", "Charge cycles of the battery." + CACHED, "gauge",
               Level.CHANNEL, value=_tx("battery_cycles")),
    MetricSpec("micboard_transmitter_battery_temperature_celsius", "Battery temperature." + CACHED, "gauge",
               Level.CHANNEL, "celsius", value=_tx("battery_temperature_celsius")),
    MetricSpec("micboard_transmitter_muted", "1 when the transmitter is muted." + CACHED, "gauge", Level.CHANNEL,
               value=_tx("muted")),
    MetricSpec("micboard_transmitter_power_locked", "1 when the transmitter's power switch is locked." + CACHED,
               "gauge", Level.CHANNEL, value=_tx("power_locked")),
    MetricSpec("micboard_rf_signal_strength_dbm", "RF level per antenna in dBm (antenna=\"combined\" when the "
               "device reports one value)." + CACHED, "gauge", Level.ANTENNA, "dbm",
               antenna_values=lambda ch: dict(ch.rf_dbm)),
    MetricSpec("micboard_rf_antenna_active", "Diversity: 1 for the antenna in use." + CACHED, "gauge",
               Level.ANTENNA, antenna_values=lambda ch: dict(ch.antenna_active)),
    MetricSpec("micboard_rf_link_quality_ratio", "RF link quality 0-1 (Axient quality/5, RSQI/100, ...)." + CACHED,
               "gauge", Level.CHANNEL, "ratio", value=lambda ch: ch.link_quality_ratio),
    MetricSpec("micboard_rf_interference_detected", "1 when the receiver reports interference." + CACHED, "gauge",
               Level.CHANNEL, value=lambda ch: ch.interference),
    MetricSpec("micboard_encryption_error", "1 when the receiver reports an encryption key mismatch." + CACHED,
               "gauge", Level.CHANNEL, value=lambda ch: ch.encryption_error),
    MetricSpec("micboard_audio_level_dbfs", "Audio RMS level in dBFS." + CACHED, "gauge", Level.CHANNEL, "dbfs",
               value=lambda ch: ch.audio_level_dbfs),
    MetricSpec("micboard_audio_peak_dbfs", "Audio peak level in dBFS, held over a short window." + CACHED, "gauge",
               Level.CHANNEL, "dbfs", value=lambda ch: ch.audio_peak_dbfs),
    MetricSpec("micboard_rf_dropouts_total", "RF link losses while a transmitter was on, counted by the exporter "
               "between polls.", "counter", Level.CHANNEL, value=lambda ch: ch.rf_dropouts),
    MetricSpec("micboard_audio_clips_total", "Audio overload events, counted by the exporter between polls.",
               "counter", Level.CHANNEL, value=lambda ch: ch.audio_clips),
)

FAMILY_INDEX: Final[dict[str, int]] = {spec.name: i for i, spec in enumerate(CATALOGUE)}
