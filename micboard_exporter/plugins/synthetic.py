"""``synthetic``: an in-process fleet with realistic dynamics, no network at all.

Each device is a receiver with ``channels`` links simulated by
:class:`~micboard_exporter.simulators.physics.ChannelPhysics`: batteries drain (``drain_speed`` times real
time), transmitters switch off and on, RF fades come and go, audio clips now and then, and a device with
``flap: true`` alternates between answering and not. Everything is deterministic for a given ``seed`` and
sequence of poll times. It serves dashboard work, scale tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import AuthError, DeviceTimeout, DeviceUnreachable, PollError, ProtocolError
from micboard_exporter.model import (
    ANTENNAS,
    ChannelSnapshot,
    DeviceSnapshot,
    TransmitterSnapshot,
)
from micboard_exporter.plugin import Plugin, Publish, discard
from micboard_exporter.simulators.physics import ChannelPhysics, default_channels

_FORCED_ERRORS: Mapping[str, type[PollError]] = {
    "timeout": DeviceTimeout,
    "unreachable": DeviceUnreachable,
    "protocol": ProtocolError,
    "auth": AuthError,
}


@dataclass
class _Device:
    rng: random.Random
    channels: list[ChannelPhysics]
    last_step: float
    polls: int = 0
    dropouts: list[int] = field(default_factory=list)
    clips: list[int] = field(default_factory=list)


class SyntheticPlugin(Plugin):
    """A simulated fleet, for demos, dashboards and scale tests."""

    name = "synthetic"
    manufacturer = "Synthetic"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "channels": {"description": "Channels per receiver.", "type": "integer", "minimum": 1, "maximum": 8},
            "seed": {"description": "Seed of the device's random dynamics.", "type": "integer"},
            "drain_speed": {"description": "Battery drain speed factor (60: a full pack lasts 8 minutes).",
                            "type": "number", "minimum": 0},
            "lively": {"description": "Let RF, audio and transmitters wander (false: only batteries drain).",
                       "type": "boolean"},
            "flap": {"description": "Fail every other poll, like a device on a bad link.", "type": "boolean"},
            "fail": {"description": "Fail every poll with this error (for testing alerts and the breaker).",
                     "enum": sorted(_FORCED_ERRORS)},
            "model": {"description": "Model name to report.", "type": "string"},
        },
    }

    def __init__(self, publish: Publish = discard, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(publish)
        self._clock = clock
        self._devices: dict[str, _Device] = {}

    def _device(self, device: DeviceConfig) -> _Device:
        state = self._devices.get(device.id)
        if state is None:
            seed = int(device.options.get("seed", 0))
            digest = hashlib.sha256(f"{seed}:{device.id}".encode()).digest()
            device_seed = int.from_bytes(digest[:8], "big")
            count = int(device.options.get("channels", 4))
            channels = default_channels(count, seed=device_seed % 10_000)
            for ch in channels:
                ch.drain_speed = float(device.options.get("drain_speed", 1.0))
            state = _Device(random.Random(device_seed), channels, self._clock(), dropouts=[0] * count,
                            clips=[0] * count)
            self._devices[device.id] = state
        return state

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Advance the device's world to now and report it."""
        forced = device.options.get("fail")
        if forced:
            raise _FORCED_ERRORS[forced](f"{device.address}: synthetic {forced} failure")
        state = self._device(device)
        state.polls += 1
        if device.options.get("flap") and state.polls % 2 == 0:
            raise DeviceUnreachable(f"{device.address}: synthetic flapping device is down this poll")
        now = self._clock()
        dt = max(0.0, min(now - state.last_step, 3600.0))
        state.last_step = now
        lively = bool(device.options.get("lively", True))
        for i, ch in enumerate(state.channels):
            was_linked = ch.link_up
            ch.step(dt, state.rng, lively=lively)
            if lively:
                self._wander(ch, state.rng, dt)
            if was_linked and ch.transmitter_on and not ch.link_up:
                state.dropouts[i] += 1
            if ch.clip_pending:
                state.clips[i] += 1
                ch.clip_pending = False
        return self._snapshot(device, state, now)

    @staticmethod
    def _wander(ch: ChannelPhysics, rng: random.Random, dt: float) -> None:
        # Rare events per second of simulated time: a pack switched off or on, an RF fade starting or ending.
        if rng.random() < 0.0005 * dt:
            ch.transmitter_on = not ch.transmitter_on
            if ch.transmitter_on and ch.battery_ratio < 0.05:
                ch.battery_ratio = 1.0  # a fresh pack went in
        if ch.fade_depth_db == 0.0 and rng.random() < 0.001 * dt:
            ch.fade_depth_db = rng.choice([15.0, 30.0, 70.0])
        elif ch.fade_depth_db > 0.0 and rng.random() < 0.2 * dt:
            ch.fade_depth_db = 0.0

    def _snapshot(self, device: DeviceConfig, state: _Device, now: float) -> DeviceSnapshot:
        channels = []
        for i, ch in enumerate(state.channels):
            levels = ch.received_dbm()
            active = ch.active_antenna()
            tx = None
            if ch.transmitter_on:
                tx = TransmitterSnapshot(
                    model=ch.transmitter_model,
                    battery_bars=ch.battery_bars,
                    battery_charge_ratio=round(ch.battery_ratio, 3),
                    battery_runtime_seconds=round(ch.runtime_s / 60.0) * 60.0,
                    battery_type=ch.battery_type,
                    battery_health_ratio=ch.battery_health_ratio,
                    battery_cycles=ch.battery_cycles,
                    battery_temperature_celsius=ch.battery_temperature_c,
                    muted=ch.muted,
                    power_locked=False,
                )
            channels.append(
                ChannelSnapshot(
                    number=i + 1,
                    name=ch.name,
                    frequency_hertz=ch.frequency_hz,
                    rf_dbm={ANTENNAS[a]: round(v, 1) for a, v in enumerate(levels)},
                    antenna_active={ANTENNAS[a]: a == active for a in range(len(levels))},
                    link_quality_ratio=round(ch.link_quality_ratio(), 2),
                    audio_level_dbfs=round(ch.audio_rms_dbfs, 1) if ch.link_up else None,
                    audio_peak_dbfs=round(ch.audio_peak_dbfs, 1) if ch.link_up else None,
                    interference=ch.fade_depth_db >= 30.0 and ch.transmitter_on,
                    encryption_error=ch.encryption_error,
                    rf_dropouts=state.dropouts[i],
                    audio_clips=state.clips[i],
                    transmitter=tx,
                )
            )
        return DeviceSnapshot(
            device_id=device.id,
            manufacturer=self.manufacturer,
            model=str(device.options.get("model", "SYN4")),
            firmware="1.0.0",
            serial=f"SYN{hashlib.sha256(device.id.encode()).hexdigest()[:8].upper()}",
            host=device.host,
            channels=tuple(channels),
            taken_at=now,
        )

    def physics(self, device_id: str) -> list[ChannelPhysics]:
        """The simulated channels of a device that has been polled (for tests and demos to script)."""
        return self._devices[device_id].channels

    async def forget(self, device_id: str) -> None:
        """Drop the simulated state of a device."""
        self._devices.pop(device_id, None)
