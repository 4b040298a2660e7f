"""MCP plugin against simulated ew G4 receivers over loopback UDP, all on port 53212.

The exporter's socket and each simulator bind 53212 on their own 127.x.y.z address. The middle octets are
random per test so parallel test runs on one machine never share an address.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from types import MappingProxyType

import anyio
import pytest
from sennheiser_helpers import Recorder, eventually, other_tasks, running

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import DeviceTimeout, DeviceUnreachable, ProtocolError
from micboard_exporter.plugins.sennheiser.mcp import MCPPlugin, codec
from micboard_exporter.plugins.sennheiser.mcp.session import _HUBS, PortInUse
from micboard_exporter.simulators.sennheiser_mcp import SennheiserMcpSimulator

pytestmark = pytest.mark.anyio


@pytest.fixture
async def net() -> AsyncIterator[str]:
    """A fresh 127.a.b prefix; .1 is the exporter, .2 and up are devices."""
    prefix = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    yield prefix
    assert not _HUBS, "an MCP socket was left open"
    assert not [t for t in other_tasks() if t.get_name().startswith("mcp-")]


def sim_at(net: str, n: int, **kwargs: object) -> SennheiserMcpSimulator:
    return SennheiserMcpSimulator(host=f"{net}.{n}", seed=n, **kwargs)


def cfg(net: str, n: int, **options: object) -> DeviceConfig:
    opts = {"bind": f"{net}.1", "push_timeout": 10, "cycle_ms": 100, "timeout": 1.0, **options}
    return DeviceConfig(id=f"em{n}", plugin="sennheiser-mcp", host=f"{net}.{n}", port=53212,
                        options=MappingProxyType(opts))


async def test_poll_reads_configuration_and_cyclic_block(net: str) -> None:
    sim = sim_at(net, 2)
    sim.channel.name = "Vocal 1"
    sim.channel.rf_dbm = [-55.0, -75.0]
    sim.channel.battery_ratio = 0.6
    async with running(sim):
        plugin = MCPPlugin()
        try:
            snap = await plugin.poll(cfg(net, 2, model="EM 300-500 G4"))
        finally:
            await plugin.aclose()
    assert (snap.manufacturer, snap.model, snap.firmware) == ("Sennheiser", "EM 300-500 G4", "1.20.1")
    (ch,) = snap.channels
    assert ch.name == "Vocal 1"
    assert ch.frequency_hertz == round(sim.channel.frequency_hz / 1000) * 1000
    # RF % -> dBm: -55 dBm = 52 dBuV = 130 %, back to -55 dBm; antenna B at -75 dBm = 80 %.
    assert ch.rf_dbm["a"] == pytest.approx(-55.0, abs=0.2)
    assert ch.rf_dbm["b"] == pytest.approx(-75.0, abs=0.2)
    assert dict(ch.antenna_active) == {"a": True, "b": False}
    assert ch.audio_level_dbfs == pytest.approx(sim.channel.audio_rms_dbfs, abs=0.3)
    assert ch.transmitter is not None
    assert ch.transmitter.battery_charge_ratio == 0.7  # the three-step gauge shows 70 %


async def test_bat_question_mark_means_no_transmitter(net: str) -> None:
    sim = sim_at(net, 2)
    sim.channel.transmitter_on = False
    async with running(sim):
        plugin = MCPPlugin()
        try:
            snap = await plugin.poll(cfg(net, 2))
        finally:
            await plugin.aclose()
    ch = snap.channels[0]
    assert ch.transmitter is None
    assert ch.transmitter_known is True
    assert ch.audio_level_dbfs is None


async def test_one_socket_serves_every_device_and_probe_instances_share_it(net: str) -> None:
    sims = [sim_at(net, n) for n in (2, 3, 4)]
    async with running(*sims):
        plugin, probe = MCPPlugin(), MCPPlugin()
        try:
            snaps = [await plugin.poll(cfg(net, n)) for n in (2, 3, 4)]
            assert [s.channels[0].name for s in snaps] == [s.channel.name for s in sims]
            assert len(_HUBS) == 1
            once = await probe.poll(cfg(net, 3))
            assert once.channels[0].name == sims[1].channel.name
            assert len(_HUBS) == 1
            await probe.aclose()
            # The probe's close must not take the socket from the long-lived plugin.
            again = await plugin.poll(cfg(net, 4))
            assert again.channels[0].name == sims[2].channel.name
        finally:
            await probe.aclose()
            await plugin.aclose()
    for sim in sims:
        assert set(sim.pushers) <= {(f"{net}.1", 53212)}


async def test_push_is_renewed_before_it_expires(net: str) -> None:
    sim = sim_at(net, 2)
    async with running(sim):
        plugin = MCPPlugin()
        try:
            await plugin.poll(cfg(net, 2, push_timeout=2))
            pushes_after_poll = sum(1 for line in sim.received if line.startswith("Push 2 "))
            # No polls for three timeouts' worth: the renewer alone must keep the subscription alive.
            await anyio.sleep(3.0)
            assert sim.pushers
            assert sum(1 for line in sim.received if line.startswith("Push 2 ")) >= pushes_after_poll + 2
        finally:
            await plugin.aclose()
        # forget() stops the stream explicitly.
        assert sim.received[-1] == "Push 0 0 0"
        assert not sim.pushers


async def test_device_expires_the_push_without_renewal(net: str) -> None:
    sim = sim_at(net, 2)
    client = (f"{net}.1", 53212)
    async with running(sim):
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.bind(client)
        try:
            raw.sendto(b"Push 1 100 0\r", (sim.host, 53212))
            await eventually(lambda: client in sim.pushers)
            await eventually(lambda: client not in sim.pushers, timeout=3.0)
        finally:
            raw.close()


async def test_pushed_changes_are_published_and_counted(net: str) -> None:
    sim = sim_at(net, 2)
    published = Recorder()
    async with running(sim):
        plugin = MCPPlugin(published)
        try:
            await plugin.poll(cfg(net, 2, cycle_ms=1000))
            sim.channel.clip()
            sim.changed()
            await published.wait_for(lambda s: s.channels[0].audio_clips == 1)
            sim.channel.transmitter_on = False
            sim.changed()  # pilot/battery change: mode 4 sends a block at once
            off = await published.wait_for(lambda s: s.channels[0].transmitter is None, timeout=0.9)
            assert off.channels[0].rf_dropouts == 1
            sim.channel.transmitter_on = True
            sim.channel.name = "Pastor"
            sim.changed()  # configuration attribute: mode 1 sends the new Name
            back = await published.wait_for(lambda s: s.channels[0].name == "Pastor" and s.channels[0].transmitter)
            assert back.channels[0].rf_dropouts == 1
        finally:
            await plugin.aclose()


async def test_silent_device_times_out_and_recovers(net: str) -> None:
    sim = sim_at(net, 2)
    async with running(sim):
        plugin = MCPPlugin()
        try:
            await plugin.poll(cfg(net, 2))
            sim.faults.stall = True
            with pytest.raises(DeviceTimeout, match="53212"):
                await plugin.poll(cfg(net, 2, timeout=0.3))
            sim.faults.stall = False
            snap = await plugin.poll(cfg(net, 2))
            assert snap.channels[0].name == sim.channel.name
        finally:
            await plugin.aclose()


async def test_device_error_line_for_push_is_a_protocol_error(net: str) -> None:
    device = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    device.bind((f"{net}.5", 53212))
    device.setblocking(False)

    async def answer_with_errors() -> None:
        while True:
            await anyio.wait_readable(device)
            data, addr = device.recvfrom(2048)
            for line in data.decode().split("\r"):
                if line.startswith("Push"):
                    device.sendto(f"1020: Value out of range [ {line} ]\r".encode(), addr)

    plugin = MCPPlugin()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_with_errors)
            with pytest.raises(ProtocolError, match="1020: Value out of range"):
                await plugin.poll(cfg(net, 5))
            tg.cancel_scope.cancel()
    finally:
        await plugin.aclose()
        device.close()


async def test_port_taken_by_another_program_is_a_clear_error(net: str) -> None:
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind((f"{net}.1", 53212))  # no SO_REUSEADDR, like a program that wants it for itself
    try:
        plugin = MCPPlugin()
        try:
            with pytest.raises(PortInUse, match="already in use") as info:
                await plugin.poll(cfg(net, 2))
        finally:
            await plugin.aclose()
    finally:
        other.close()
    assert isinstance(info.value, DeviceUnreachable)


async def test_simulator_ignores_clients_not_on_port_53212(net: str) -> None:
    sim = sim_at(net, 2)
    async with running(sim):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind((f"{net}.1", 0))
            raw.sendto(codec.encode("FirmwareRevision"), (sim.host, 53212))
            await anyio.sleep(0.2)
            raw.setblocking(False)
            with pytest.raises(BlockingIOError):
                raw.recvfrom(2048)
        assert not sim.received


async def test_datagrams_from_unconfigured_peers_are_ignored(net: str) -> None:
    sim = sim_at(net, 2)
    async with running(sim):
        plugin = MCPPlugin()
        try:
            snap = await plugin.poll(cfg(net, 2))
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            stranger.bind((f"{net}.9", 53212))
            try:
                stranger.sendto(b"Name Intruder\rConfig 1\r", (f"{net}.1", 53212))
                hub = next(iter(_HUBS.values()))
                await eventually(lambda: hub.unknown_datagrams >= 1)
            finally:
                stranger.close()
            again = await plugin.poll(cfg(net, 2))
            assert again.channels[0].name == snap.channels[0].name
        finally:
            await plugin.aclose()
