"""Device snapshots: what a plugin reports about one device at one moment.

Plugins fill these immutable dataclasses; the state store, events and exposition only read them.

**Unknown is absent.** A field the device did not report, or reported as a sentinel (255, 65535, ``UNKN``,
HTTP 422 …), is ``None`` and produces no sample; it is never 0 or 100. :func:`known` is the one helper
that turns sentinels into ``None``; the unit helpers below convert to the base units of the metric
catalogue (hertz, dBm, dBFS, seconds, ratios 0-1, celsius).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

T = TypeVar("T")

_EMPTY: Mapping[str, object] = MappingProxyType({})

#: Antenna label values in diversity order; "combined" is used when a device reports one value.
ANTENNAS: tuple[str, ...] = ("a", "b", "c", "d")
COMBINED_ANTENNA = "combined"


def known(value: T | None, sentinels: Collection[object] = ()) -> T | None:
    """Return ``value``, or ``None`` when it is missing or one of the device's ``sentinels``.

    Strings are compared after stripping whitespace and case-insensitively, so ``"UNKN "`` matches
    ``"UNKN"``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        upper = stripped.upper()
        for sentinel in sentinels:
            if isinstance(sentinel, str) and sentinel.upper() == upper:
                return None
        return value
    if isinstance(value, bool):
        return value
    if value in sentinels:
        return None
    return value


def mhz_to_hz(mhz: float) -> float:
    """Megahertz to hertz."""
    return mhz * 1_000_000.0


def khz_to_hz(khz: float) -> float:
    """Kilohertz to hertz."""
    return khz * 1_000.0


def percent_to_ratio(percent: float) -> float:
    """0-100 % to a 0-1 ratio, clamped, since devices occasionally report a little over 100."""
    return min(max(percent / 100.0, 0.0), 1.0)


def clamp_ratio(value: float) -> float:
    """Clamp to the 0-1 range of a ``_ratio`` metric."""
    return min(max(value, 0.0), 1.0)


def minutes_to_seconds(minutes: float) -> float:
    """Minutes to seconds."""
    return minutes * 60.0


@dataclass(frozen=True, slots=True)
class TransmitterSnapshot:
    """A body-pack or handheld linked to a receiver channel (or an in-ear transmitter itself)."""

    model: str | None = None
    battery_bars: int | None = None
    """0-5 as the receiver shows it."""
    battery_charge_ratio: float | None = None
    battery_runtime_seconds: float | None = None
    battery_type: str | None = None
    """Short code such as ``"LION"``, ``"ALKA"``, ``"NIMH"``, ``"BATTERY"``."""
    battery_health_ratio: float | None = None
    battery_cycles: int | None = None
    battery_temperature_celsius: float | None = None
    muted: bool | None = None
    power_locked: bool | None = None


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """One receive (or transmit) channel of a device. ``number`` is 1-based."""

    number: int
    name: str | None = None
    frequency_hertz: float | None = None
    rf_dbm: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """RF level per antenna label (``"a"``..``"d"``), or ``{"combined": x}`` for one value."""
    antenna_active: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    """Diversity state per antenna label: True for the antenna(s) in use."""
    link_quality_ratio: float | None = None
    audio_level_dbfs: float | None = None
    audio_peak_dbfs: float | None = None
    interference: bool | None = None
    encryption_error: bool | None = None
    rf_dropouts: int = 0
    """Link losses while a transmitter was on, counted by the plugin since its session started."""
    audio_clips: int = 0
    """Audio overload events counted by the plugin since its session started."""
    transmitter: TransmitterSnapshot | None = None
    """``None`` when no transmitter is linked or it is switched off."""
    transmitter_known: bool = True
    """False when the device cannot say whether a transmitter is present (no presence sample then)."""


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """Everything one poll (or one pushed update) learnt about a device."""

    device_id: str
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    host: str | None = None
    channels: tuple[ChannelSnapshot, ...] = ()
    taken_at: float = field(default=0.0, compare=False)
    """``time.monotonic()`` when the snapshot was taken; not part of equality."""

    def channel(self, number: int) -> ChannelSnapshot | None:
        """The channel with this 1-based number, if the device has it."""
        for ch in self.channels:
            if ch.number == number:
                return ch
        return None
