"""The simulated physical world behind every simulator: packs, batteries, RF and audio.

Protocol simulators (and the in-process ``synthetic`` plugin) read :class:`ChannelPhysics` and render it in
their own units. State is scriptable from tests (``battery_ratio``, ``transmitter_on`` …) and evolves with
:meth:`ChannelPhysics.step`, deterministic for a given :class:`random.Random` seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: Full charge lasts this long at ``drain_speed`` 1 (a typical Li-ion pack: about 8 hours).
FULL_CHARGE_RUNTIME_S = 8 * 3600.0
NOISE_FLOOR_DBM = -100.0


@dataclass
class ChannelPhysics:
    """One wireless link: a transmitter (pack or handheld) and what the receiver hears of it.

    Units here are the engineering units of the metric catalogue; each protocol simulator converts them
    to its wire units (e.g. Shure ULX-D RF raw = dBm + 128).
    """

    name: str = "CH"
    frequency_hz: float = 470_000_000.0
    transmitter_on: bool = True
    transmitter_model: str = "ULXD1"
    battery_type: str = "LION"
    battery_ratio: float = 1.0
    battery_health_ratio: float = 0.97
    battery_cycles: int = 42
    battery_temperature_c: float = 24.0
    rf_dbm: list[float] = field(default_factory=lambda: [-55.0, -58.0])
    """Per antenna; the active one is the strongest."""
    audio_rms_dbfs: float = -24.0
    audio_peak_dbfs: float = -12.0
    muted: bool = False
    interference: bool = False
    encryption_error: bool = False
    clip_pending: bool = False
    """Set by :meth:`clip` or by chance in :meth:`step`; a simulator reports it once and clears it."""
    drain_speed: float = 1.0
    """Battery drain speed factor; 60 drains a full pack in 8 minutes."""
    fade_depth_db: float = 0.0
    """Extra attenuation applied to every antenna (an RF fade); 60 or more means the link is lost."""

    @property
    def battery_bars(self) -> int:
        """0-5 bars as a Shure receiver shows them."""
        return min(5, max(0, math.ceil(self.battery_ratio * 5 - 1e-9)))

    @property
    def runtime_s(self) -> float:
        """Remaining runtime at the nominal draw."""
        return self.battery_ratio * FULL_CHARGE_RUNTIME_S

    @property
    def link_up(self) -> bool:
        """Whether the receiver hears the transmitter at all."""
        return self.transmitter_on and max(self.received_dbm()) > NOISE_FLOOR_DBM + 10

    def received_dbm(self) -> list[float]:
        """RF per antenna as received: the noise floor when the transmitter is off or faded out."""
        if not self.transmitter_on:
            return [NOISE_FLOOR_DBM for _ in self.rf_dbm]
        return [max(NOISE_FLOOR_DBM, v - self.fade_depth_db) for v in self.rf_dbm]

    def active_antenna(self) -> int | None:
        """Index of the antenna in use, or None with no link."""
        if not self.link_up:
            return None
        levels = self.received_dbm()
        return levels.index(max(levels))

    def link_quality_ratio(self) -> float:
        """0-1: 1 well above the noise floor, 0 at it (Axient-style quality)."""
        if not self.link_up:
            return 0.0
        margin = max(self.received_dbm()) - NOISE_FLOOR_DBM
        return max(0.0, min(1.0, margin / 40.0))

    def clip(self) -> None:
        """Script an audio overload."""
        self.clip_pending = True
        self.audio_peak_dbfs = 0.0

    def step(self, dt: float, rng: random.Random, *, lively: bool = True) -> None:
        """Advance ``dt`` seconds: drain the battery and, when ``lively``, wander RF and audio."""
        if self.transmitter_on:
            self.battery_ratio = max(0.0, self.battery_ratio - dt * self.drain_speed / FULL_CHARGE_RUNTIME_S)
            if self.battery_ratio <= 0.0:
                self.transmitter_on = False
        if not lively:
            return
        self.rf_dbm = [min(-30.0, max(-95.0, v + rng.gauss(0.0, 1.5))) for v in self.rf_dbm]
        self.audio_rms_dbfs = min(-6.0, max(-60.0, self.audio_rms_dbfs + rng.gauss(0.0, 2.0)))
        self.audio_peak_dbfs = min(0.0, self.audio_rms_dbfs + 10.0 + abs(rng.gauss(0.0, 2.0)))
        if rng.random() < 0.002 * dt:
            self.clip()


def default_channels(count: int, *, seed: int = 0, base_hz: float = 470_000_000.0) -> list[ChannelPhysics]:
    """``count`` plausible channels with varied names, frequencies and charge, deterministic by ``seed``."""
    rng = random.Random(seed)
    names = ["Vocal", "Pastor", "Host", "Guest", "Lead", "Keys", "Choir", "Piano", "Podium", "Band"]
    channels = []
    for i in range(count):
        channels.append(
            ChannelPhysics(
                name=f"{names[(seed + i) % len(names)]} {i + 1}",
                frequency_hz=base_hz + 25_000 * (7 * seed + 13 * i) % 60_000_000,
                battery_ratio=round(rng.uniform(0.35, 1.0), 3),
                battery_cycles=rng.randint(5, 400),
                battery_health_ratio=round(rng.uniform(0.7, 1.0), 2),
                rf_dbm=[rng.uniform(-70.0, -45.0), rng.uniform(-72.0, -48.0)],
            )
        )
    return channels
