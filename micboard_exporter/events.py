"""State-change events, found by diffing two snapshots of one device.

:func:`diff_snapshots` is pure: the state store calls it with the previous and the new snapshot and
the battery thresholds, and logs and counts what it returns. Device up/down events come from the store's
health transitions, not from snapshots.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from micboard_exporter.config_types import BatteryConfig
from micboard_exporter.model import ChannelSnapshot, DeviceSnapshot, TransmitterSnapshot


class EventKind(enum.StrEnum):
    """The ``event`` label values of ``micboard_events_total``."""

    DEVICE_UP = "device_up"
    DEVICE_DOWN = "device_down"
    TRANSMITTER_ON = "transmitter_on"
    TRANSMITTER_OFF = "transmitter_off"
    BATTERY_LOW = "battery_low"
    BATTERY_CRITICAL = "battery_critical"
    RF_DROPOUT = "rf_dropout"
    AUDIO_CLIP = "audio_clip"
    INTERFERENCE = "interference"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One event; ``channel`` is None for device-level events, ``count`` > 1 when several were folded."""

    device_id: str
    kind: EventKind
    channel: int | None = None
    channel_name: str | None = None
    detail: str = ""
    count: int = 1
    wall_time: float = 0.0


class BatteryLevel(enum.IntEnum):
    """Battery state of a channel against the configured thresholds."""

    UNKNOWN = 0
    OK = 1
    LOW = 2
    CRITICAL = 3


def battery_level(tx: TransmitterSnapshot | None, thresholds: BatteryConfig) -> BatteryLevel:
    """Classify a transmitter's battery: by charge ratio where known, else by bars."""
    if tx is None:
        return BatteryLevel.UNKNOWN
    if tx.battery_charge_ratio is not None:
        ratio = tx.battery_charge_ratio
        if ratio <= thresholds.critical.ratio:
            return BatteryLevel.CRITICAL
        return BatteryLevel.LOW if ratio <= thresholds.low.ratio else BatteryLevel.OK
    if tx.battery_bars is not None:
        bars = tx.battery_bars
        if bars <= thresholds.critical.bars:
            return BatteryLevel.CRITICAL
        return BatteryLevel.LOW if bars <= thresholds.low.bars else BatteryLevel.OK
    return BatteryLevel.UNKNOWN


def _battery_detail(tx: TransmitterSnapshot) -> str:
    if tx.battery_charge_ratio is not None:
        return f"charge {tx.battery_charge_ratio:.0%}"
    return f"{tx.battery_bars} bars"


def _channel_events(
    device_id: str, old: ChannelSnapshot | None, new: ChannelSnapshot, thresholds: BatteryConfig
) -> list[DeviceEvent]:
    events: list[DeviceEvent] = []
    name = new.name

    def emit(kind: EventKind, detail: str = "", count: int = 1) -> None:
        events.append(DeviceEvent(device_id, kind, new.number, name, detail, count))

    if old is None:
        return events
    if old.transmitter_known and new.transmitter_known:
        if old.transmitter is None and new.transmitter is not None:
            emit(EventKind.TRANSMITTER_ON, new.transmitter.model or "")
        elif old.transmitter is not None and new.transmitter is None:
            emit(EventKind.TRANSMITTER_OFF)
    before = battery_level(old.transmitter, thresholds)
    after = battery_level(new.transmitter, thresholds)
    if new.transmitter is not None and after > before and before != BatteryLevel.UNKNOWN:
        if after == BatteryLevel.CRITICAL:
            emit(EventKind.BATTERY_CRITICAL, _battery_detail(new.transmitter))
        elif after == BatteryLevel.LOW:
            emit(EventKind.BATTERY_LOW, _battery_detail(new.transmitter))
    if new.rf_dropouts > old.rf_dropouts:
        emit(EventKind.RF_DROPOUT, count=new.rf_dropouts - old.rf_dropouts)
    if new.audio_clips > old.audio_clips:
        emit(EventKind.AUDIO_CLIP, count=new.audio_clips - old.audio_clips)
    if new.interference and not old.interference:
        emit(EventKind.INTERFERENCE)
    return events


def diff_snapshots(old: DeviceSnapshot | None, new: DeviceSnapshot, thresholds: BatteryConfig) -> list[DeviceEvent]:
    """Events between two snapshots of one device (none for the first snapshot: nothing changed yet)."""
    if old is None:
        return []
    previous = {ch.number: ch for ch in old.channels}
    events: list[DeviceEvent] = []
    for ch in new.channels:
        events.extend(_channel_events(new.device_id, previous.get(ch.number), ch, thresholds))
    return events
