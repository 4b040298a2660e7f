"""Typed, frozen configuration objects (the output of :mod:`micboard_exporter.config`).

Kept apart from the loader so plugins can import :class:`DeviceConfig` without pulling in YAML and JSON
Schema machinery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DEFAULT_LISTEN = ":9798"
DEFAULT_INTERVAL_S = 5.0
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_BATCH_SIZE = 100
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_RETRIES = 2
DEFAULT_RETRY_BACKOFF_S = 0.1
DEFAULT_BREAKER_FAILURES = 3
DEFAULT_BREAKER_MAX_INTERVAL_S = 300.0
DEFAULT_BATTERY_LOW_RATIO = 0.25
DEFAULT_BATTERY_LOW_BARS = 2
DEFAULT_BATTERY_CRITICAL_RATIO = 0.10
DEFAULT_BATTERY_CRITICAL_BARS = 1
DEFAULT_PROBE_TIMEOUT_OFFSET_S = 0.5


class Secret:
    """A secret value read from an environment variable or a file.

    ``str()`` and ``repr()`` never show the value; call :meth:`reveal` at the one place it is sent to a
    device.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source
        """Where it came from, e.g. ``env:EWDX_PASSWORD`` (safe to log)."""

    def reveal(self) -> str:
        """The secret itself. Never log or render the result."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<redacted from {self.source}>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value and other.source == self.source

    def __hash__(self) -> int:
        return hash((self.source, self._value))


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Per-channel overrides: the wall-board slot and the performer's (extended) name."""

    slot: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device from the config, with plugin defaults already merged into ``options``."""

    id: str
    plugin: str
    host: str
    port: int | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    secrets: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}))
    """Resolved ``*_env`` / ``*_file`` options, keyed by the option name without the suffix."""
    channels: Mapping[int, ChannelConfig] = field(default_factory=lambda: MappingProxyType({}))

    def secret(self, name: str) -> Secret | None:
        """The resolved secret ``name`` (from ``name_env`` or ``name_file``), if configured."""
        return self.secrets.get(name)

    def for_plugin(self) -> DeviceConfig:
        """This device as its plugin sees it: without labels and channel settings, which only the exposition
        uses, so relabelling a device or renaming a performer in a reload never reopens its session."""
        if not self.labels and not self.channels:
            return self
        return dataclasses.replace(self, labels=MappingProxyType({}), channels=MappingProxyType({}))

    @property
    def address(self) -> str:
        """``host:port`` (or ``host`` when no port is set) for messages."""
        return f"{self.host}:{self.port}" if self.port is not None else self.host


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Circuit breaker: after ``failures`` failed cycles, back off doubling up to ``max_interval``."""

    failures: int = DEFAULT_BREAKER_FAILURES
    max_interval: float = DEFAULT_BREAKER_MAX_INTERVAL_S


@dataclass(frozen=True, slots=True)
class PollConfig:
    """Poll scheduling; all durations in seconds."""

    interval: float = DEFAULT_INTERVAL_S
    timeout: float = DEFAULT_TIMEOUT_S
    batch_size: int = DEFAULT_BATCH_SIZE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retries: int = DEFAULT_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF_S
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


@dataclass(frozen=True, slots=True)
class BatteryThreshold:
    """A battery level at or below which an event fires: by charge ratio, or by bars when no ratio."""

    ratio: float
    bars: int


@dataclass(frozen=True, slots=True)
class BatteryConfig:
    """Thresholds for battery_low / battery_critical events (alerts use the same defaults)."""

    low: BatteryThreshold = field(
        default_factory=lambda: BatteryThreshold(DEFAULT_BATTERY_LOW_RATIO, DEFAULT_BATTERY_LOW_BARS)
    )
    critical: BatteryThreshold = field(
        default_factory=lambda: BatteryThreshold(DEFAULT_BATTERY_CRITICAL_RATIO, DEFAULT_BATTERY_CRITICAL_BARS)
    )


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """``/probe`` is off unless ``allowed_targets`` lists networks or host names."""

    allowed_targets: tuple[str, ...] = ()
    timeout_offset: float = DEFAULT_PROBE_TIMEOUT_OFFSET_S

    @property
    def enabled(self) -> bool:
        """Whether any target is allowed at all."""
        return bool(self.allowed_targets)


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated config file."""

    source: str
    """Path of the file it was loaded from (for messages)."""
    listen: str = DEFAULT_LISTEN
    poll: PollConfig = field(default_factory=PollConfig)
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    devices: tuple[DeviceConfig, ...] = ()
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    checksum: str = ""
    """SHA-256 of the file's bytes, so a reload of an unchanged file is a no-op."""
