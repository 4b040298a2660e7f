"""The synthetic fleet: deterministic under a seed, batteries drain, transmitters and RF move, flapping flaps."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import AuthError, DeviceUnreachable
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugins.synthetic import SyntheticPlugin

pytestmark = pytest.mark.anyio


def device(device_id: str = "rx", **options: Any) -> DeviceConfig:
    return DeviceConfig(id=device_id, plugin="synthetic", host="127.0.0.1", options=MappingProxyType(options))


async def run(plugin: SyntheticPlugin, dev: DeviceConfig, clock: list[float], polls: int, step: float
              ) -> list[DeviceSnapshot]:
    out = []
    for _ in range(polls):
        clock[0] += step
        out.append(await plugin.poll(dev))
    return out


async def test_same_seed_same_world() -> None:
    runs = []
    for _ in range(2):
        clock = [0.0]
        plugin = SyntheticPlugin(clock=lambda c=clock: c[0])  # type: ignore[misc]
        runs.append(await run(plugin, device(seed=7, channels=3), clock, 50, 30.0))
    assert runs[0] == runs[1]
    other_clock = [0.0]
    other = SyntheticPlugin(clock=lambda: other_clock[0])
    assert await run(other, device(seed=8, channels=3), other_clock, 50, 30.0) != runs[0]


async def test_batteries_drain_with_the_speed_factor() -> None:
    clock = [0.0]
    plugin = SyntheticPlugin(clock=lambda: clock[0])
    slow, fast = device("slow", drain_speed=1, lively=False), device("fast", drain_speed=60, lively=False)
    first_slow, first_fast = await plugin.poll(slow), await plugin.poll(fast)
    clock[0] += 120.0  # two minutes
    later_slow, later_fast = await plugin.poll(slow), await plugin.poll(fast)

    def charge(snap: DeviceSnapshot) -> float:
        tx = snap.channels[0].transmitter
        assert tx is not None and tx.battery_charge_ratio is not None
        return tx.battery_charge_ratio

    drop_slow = charge(first_slow) - charge(later_slow)
    drop_fast = charge(first_fast) - charge(later_fast)
    # 60x speed: two minutes drain a quarter of a full pack (8 h at 1x).
    assert drop_fast == pytest.approx(0.25, abs=0.01)
    assert drop_slow == pytest.approx(0.25 / 60, abs=0.002)


async def test_a_lively_fleet_switches_transmitters_and_fades() -> None:
    clock = [0.0]
    plugin = SyntheticPlugin(clock=lambda: clock[0])
    snaps = await run(plugin, device(seed=3, channels=8), clock, 400, 10.0)
    presence = {tuple(ch.transmitter is not None for ch in s.channels) for s in snaps}
    assert len(presence) > 1  # some pack went off or on
    assert any(ch.rf_dropouts > 0 for ch in snaps[-1].channels) or any(
        ch.interference for s in snaps for ch in s.channels)
    levels = {ch.rf_dbm["a"] for s in snaps for ch in s.channels}
    assert len(levels) > 100  # RF wanders


async def test_flapping_and_forced_failures() -> None:
    plugin = SyntheticPlugin()
    flappy = device("flappy", flap=True)
    results = []
    for _ in range(4):
        try:
            await plugin.poll(flappy)
            results.append("ok")
        except DeviceUnreachable:
            results.append("down")
    assert results == ["ok", "down", "ok", "down"]
    with pytest.raises(AuthError, match="synthetic auth failure"):
        await plugin.poll(device("locked", fail="auth"))


async def test_physics_is_scriptable_for_demos() -> None:
    plugin = SyntheticPlugin()
    dev = device(lively=False)
    await plugin.poll(dev)
    plugin.physics("rx")[0].transmitter_on = False
    snap = await plugin.poll(dev)
    assert snap.channels[0].transmitter is None
    await plugin.forget("rx")
    with pytest.raises(KeyError):
        plugin.physics("rx")
