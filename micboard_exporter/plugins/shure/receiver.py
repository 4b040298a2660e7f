"""What a Shure session knows about its receiver, folded from decoded frames, and its snapshot.

:class:`ReceiverState` accumulates :class:`~micboard_exporter.plugins.shure.codec.Decoded` readings
(replies to GETs, unsolicited ``REP`` and ``SAMPLE``), counts RF dropouts and audio clips as they happen,
and renders a :class:`~micboard_exporter.model.DeviceSnapshot`. No I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from micboard_exporter.model import ANTENNAS, COMBINED_ANTENNA, ChannelSnapshot, DeviceSnapshot, TransmitterSnapshot
from micboard_exporter.plugins.shure.codec import (
    SOLE_MODEL,
    ChannelFields,
    Decoded,
    DeviceFields,
    Family,
    model_info,
)

MANUFACTURER: Final = "Shure"
#: Readings that only metering (SAMPLE) moves; a change in nothing else is a "meter" change, which the
#: session may coalesce (see :class:`Change`).
METER_KEYS: Final = frozenset({
    "rf_a", "rf_b", "rf_c", "rf_d", "rf_combined", "active_a", "active_b", "active_c", "active_d",
    "link_quality_ratio", "audio_level_dbfs", "audio_peak_dbfs",
})


class Change(enum.IntEnum):
    """How much a frame changed the snapshot: nothing, meter readings only, or state worth pushing now."""

    NONE = 0
    METER = 1
    STATE = 2


@dataclass
class ChannelState:
    """Latest readings of one channel plus the event counters."""

    number: int
    fields: ChannelFields = field(default_factory=lambda: ChannelFields())
    rf_dropouts: int = 0
    audio_clips: int = 0
    _linked: bool | None = None
    _clipping: bool = False
    _cached: ChannelSnapshot | None = None

    def apply(self, update: ChannelFields) -> Change:
        """Fold one frame's readings in; return how much the snapshot changed."""
        change = self._apply(update)
        if change:
            self._cached = None
        return change

    def reset(self) -> None:
        """Forget the readings (not the counters)."""
        self.fields = ChannelFields()
        self._linked = None
        self._clipping = False
        self._cached = None

    def _apply(self, update: ChannelFields) -> Change:
        present_before = self.transmitter_present
        change = Change.NONE
        for key, value in update.items():
            if key in ("link_up", "clip"):
                continue
            if key not in self.fields or self.fields[key] != value:  # type: ignore[literal-required]
                self.fields[key] = value  # type: ignore[literal-required]
                change = max(change, Change.METER if key in METER_KEYS else Change.STATE)
        link = update.get("link_up")
        if link is not None:
            # A dropout is a present transmitter's link going from heard to not heard (DESIGN.md
            # micboard_rf_dropouts_total). Counted on the edge, so a 1-s fade between scrapes is not lost.
            if self._linked is True and not link and present_before:
                self.rf_dropouts += 1
                change = Change.STATE
            self._linked = link
        clip = update.get("clip")
        if clip is not None:
            if clip and not self._clipping:
                self.audio_clips += 1
                change = Change.STATE
            self._clipping = clip
        return change

    @property
    def transmitter_known(self) -> bool:
        """Whether the receiver has said anything about transmitter presence yet."""
        return any(k in self.fields for k in ("tx_on", "tx_model", "battery_bars"))

    @property
    def transmitter_present(self) -> bool:
        """Present: explicit on (PSM1000), else a known transmitter model, else known battery bars.

        ``TX_TYPE UNKN`` / ``TX_MODEL UNKNOWN`` means no transmitter (D-ULXD, D-SLXD; CMP treats it the same);
        UHF-R has no documented model reply, so its battery reading (``U`` = none) decides (S06).
        """
        f = self.fields
        if "tx_on" in f:
            return f["tx_on"] is True
        if "tx_model" in f:
            return f["tx_model"] is not None
        return f.get("battery_bars") is not None

    def snapshot(self, family: Family) -> ChannelSnapshot:
        """This channel in the model's units; transmitter readings only while one is present."""
        if self._cached is None:
            self._cached = self._build(family)
        return self._cached

    def _build(self, family: Family) -> ChannelSnapshot:
        f = self.fields
        levels = (f.get("rf_a"), f.get("rf_b"), f.get("rf_c"), f.get("rf_d"))
        rf: dict[str, float] = {ANTENNAS[i]: v for i, v in enumerate(levels) if v is not None}
        if not rf and (combined := f.get("rf_combined")) is not None:
            rf = {COMBINED_ANTENNA: combined}
        states = (f.get("active_a"), f.get("active_b"), f.get("active_c"), f.get("active_d"))
        active: dict[str, bool] = {ANTENNAS[i]: v for i, v in enumerate(states) if v is not None}
        transmitter: TransmitterSnapshot | None = None
        if self.transmitter_present:
            transmitter = TransmitterSnapshot(
                model=f.get("tx_model") or ("P10T" if family is Family.P10T else None),
                battery_bars=f.get("battery_bars"),
                battery_charge_ratio=f.get("battery_charge_ratio"),
                battery_runtime_seconds=f.get("battery_runtime_seconds"),
                battery_type=f.get("battery_type"),
                battery_health_ratio=f.get("battery_health_ratio"),
                battery_cycles=f.get("battery_cycles"),
                battery_temperature_celsius=f.get("battery_temperature_celsius"),
                muted=f.get("muted"),
                power_locked=f.get("power_locked"),
            )
        return ChannelSnapshot(
            number=self.number,
            name=f.get("name"),
            frequency_hertz=f.get("frequency_hz"),
            rf_dbm=MappingProxyType(rf),
            antenna_active=MappingProxyType(active),
            link_quality_ratio=f.get("link_quality_ratio"),
            audio_level_dbfs=f.get("audio_level_dbfs"),
            audio_peak_dbfs=f.get("audio_peak_dbfs"),
            interference=f.get("interference"),
            encryption_error=f.get("encryption_error"),
            rf_dropouts=self.rf_dropouts,
            audio_clips=self.audio_clips,
            transmitter=transmitter,
            transmitter_known=self.transmitter_known,
        )


@dataclass
class ReceiverState:
    """Everything one session learnt about one receiver (or PSM1000 transmitter)."""

    family: Family
    configured_model: str | None = None
    """``options.model``: wins over the device's reply (for firmware that does not answer ``MODEL``)."""
    device: DeviceFields = field(default_factory=lambda: DeviceFields())
    channels: dict[int, ChannelState] = field(default_factory=dict)
    _cached: DeviceSnapshot | None = None

    def apply(self, decoded: Decoded) -> Change:
        """Fold one decoded frame in; return how much the snapshot changed."""
        change = self._apply(decoded)
        if change:
            self._cached = None
        return change

    def _apply(self, decoded: Decoded) -> Change:
        change = Change.NONE
        for key, value in decoded.device_fields.items():
            if self.device.get(key) != value:
                self.device[key] = value  # type: ignore[literal-required]
                change = Change.STATE
        if decoded.channel is not None and decoded.channel_fields:
            channel = self.channels.get(decoded.channel)
            if channel is None:
                channel = self.channels[decoded.channel] = ChannelState(decoded.channel)
                change = Change.STATE
            change = max(change, channel.apply(decoded.channel_fields))
        return change

    def reset_readings(self) -> None:
        """Forget readings (after a reconnect they may be stale) but keep the event counters."""
        self.device = DeviceFields()
        self._cached = None
        for channel in self.channels.values():
            channel.reset()

    @property
    def model(self) -> str | None:
        """The configured model, else the device's reply, else the family's only model."""
        return self.configured_model or self.device.get("model") or SOLE_MODEL.get(self.family)

    @property
    def channel_count(self) -> int:
        """From the model where known, else the highest channel the device reported, else 1."""
        info = model_info(self.model)
        seen = max(self.channels, default=0)
        if info is not None:
            return info.channels
        return max(seen, 1)

    def snapshot(self, device_id: str, host: str) -> DeviceSnapshot:
        """A frozen snapshot of the current state.

        Built again only after a change: a poll of an unchanged receiver (and the state store comparing
        it with the last pushed one) then costs almost nothing, which matters with hundreds of receivers.
        """
        cached = self._cached
        if cached is not None and cached.device_id == device_id and cached.host == host:
            return dataclasses.replace(cached, taken_at=time.monotonic())
        self._cached = self._build(device_id, host)
        return self._cached

    def _build(self, device_id: str, host: str) -> DeviceSnapshot:
        channels = []
        for number in range(1, self.channel_count + 1):
            state = self.channels.get(number) or ChannelState(number)
            channels.append(state.snapshot(self.family))
        return DeviceSnapshot(
            device_id=device_id,
            manufacturer=MANUFACTURER,
            model=self.model,
            firmware=self.device.get("firmware"),
            serial=None,  # command strings expose no serial number (ref §2)
            host=host,
            channels=tuple(channels),
            taken_at=time.monotonic(),
        )
