"""Faulty receivers: each failure surfaces as the right PollError, and the session recovers on its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc
import pytest
from shure_helpers import FAST, Recorder, device, options, plugin_session, running

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import DeviceTimeout, DeviceUnreachable, PollError, ProtocolError
from micboard_exporter.plugins.shure import ShurePlugin
from micboard_exporter.simulators import shure as shure_simulators
from micboard_exporter.simulators.shure import (
    ShureAxtdSimulator,
    ShureSimulator,
    ShureUhfrSimulator,
    ShureUlxdSimulator,
)


async def _poll_until_ok(
    plugin: ShurePlugin, dev_options: Mapping[str, Any], sim: ShureSimulator, attempts: int = 5
) -> None:
    """Recovery is allowed a few polls (one may still see the old failure), never more."""
    for _ in range(attempts):
        try:
            await plugin.poll(device(sim, **dev_options))
        except PollError:
            await anyio.sleep(0.05)
        else:
            return
    raise AssertionError("the session did not recover")


@pytest.mark.anyio
async def test_stalled_receiver_times_out_then_recovers() -> None:
    sim = ShureUlxdSimulator(seed=1)
    opts = options(meter_rate="0")
    async with running(sim), plugin_session() as plugin:
        await plugin.poll(device(sim, **opts))
        sim.faults.stall = True
        with pytest.raises(DeviceTimeout, match=rf"127\.0\.0\.1:{sim.port}: poll heartbeat: no reply"):
            await plugin.poll(device(sim, **opts))
        # While stalled, every attempt keeps failing as a timeout (a fresh connection gets no seed either).
        with pytest.raises(DeviceTimeout):
            await plugin.poll(device(sim, **opts))
        sim.faults.stall = False
        snap = await plugin.poll(device(sim, **opts))
    assert snap.channels[0].name == sim.channels[0].name[:8].strip()


@pytest.mark.anyio
async def test_connection_closed_mid_frame_is_a_protocol_error_then_recovers() -> None:
    sim = ShureUlxdSimulator(seed=2)
    opts = options(meter_rate="0")
    async with running(sim), plugin_session() as plugin:
        await plugin.poll(device(sim, **opts))
        sim.faults.close_mid_frame = True
        with pytest.raises(ProtocolError, match="closed mid-frame"):
            await plugin.poll(device(sim, **opts))
        sim.faults.close_mid_frame = False
        await _poll_until_ok(plugin, opts, sim)
        assert sim.connections_served >= 2


@pytest.mark.anyio
async def test_garbage_bytes_are_a_protocol_error_then_recovers() -> None:
    sim = ShureAxtdSimulator(seed=3)
    opts = options(meter_rate="0")
    async with running(sim), plugin_session() as plugin:
        await plugin.poll(device(sim, **opts))
        sim.faults.garbage = True
        with pytest.raises(ProtocolError, match=r"read: unexpected byte 0x00 outside a frame"):
            await plugin.poll(device(sim, **opts))
        sim.faults.garbage = False
        await _poll_until_ok(plugin, opts, sim)


@pytest.mark.anyio
async def test_replies_split_byte_by_byte_still_parse() -> None:
    sim = ShureAxtdSimulator(seed=4, model="AD4D")
    sim.faults.split_bytes = True
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        snap = await plugin.poll(device(sim, **options(meter_rate="100ms")))
        assert snap.channels[1].name == sim.channels[1].name
        sim.channels[1].transmitter_on = False
        sim.changed()
        await recorder.wait_for(lambda s: s.channels[1].transmitter is None)
        session = plugin.session("rx1")
        assert session is not None
        assert session.decode_errors == 0


@pytest.mark.anyio
async def test_refused_and_stopped_receivers_are_unreachable_and_come_back() -> None:
    sim = ShureUlxdSimulator(seed=5)
    opts = options(meter_rate="0")
    async with plugin_session() as plugin:
        async with running(sim):
            await plugin.poll(device(sim, **opts))
            sim.faults.refuse = True  # accepts, then closes at once
            await plugin.forget("rx1")
            with pytest.raises(DeviceUnreachable, match="connection closed by the device"):
                await plugin.poll(device(sim, **opts))
        # Nothing listens on the port now: the kernel refuses.
        with pytest.raises(DeviceUnreachable, match=rf"127\.0\.0\.1:{sim.port}: connect: ECONNREFUSED"):
            await plugin.poll(device(sim, **opts))
        sim.faults.refuse = False
        async with running(sim):  # the same port again
            await _poll_until_ok(plugin, opts, sim)


@pytest.mark.anyio
async def test_background_heartbeat_notices_a_stall_between_polls() -> None:
    sim = ShureUlxdSimulator(seed=6)
    async with running(sim), plugin_session() as plugin:
        await plugin.poll(device(sim, **options(meter_rate="0", heartbeat_interval="100ms")))
        session = plugin.session("rx1")
        assert session is not None
        sim.faults.stall = True
        with anyio.fail_after(3):
            while session.status == "ready":
                await anyio.sleep(0.02)
        assert session.status in ("failed", "connecting")


@pytest.mark.anyio
async def test_uhfr_silence_is_a_timeout_and_a_closed_port_is_unreachable() -> None:
    sim = ShureUhfrSimulator(seed=7)
    opts = options(meter_rate="0")
    async with plugin_session() as plugin:
        async with running(sim):
            await plugin.poll(device(sim, **opts))
            sim.faults.stall = True
            with pytest.raises(DeviceTimeout, match="no reply to"):
                await plugin.poll(device(sim, **opts))
            sim.faults.stall = False
            await _poll_until_ok(plugin, opts, sim)
            sim.faults.garbage = True
            with pytest.raises(ProtocolError, match="unexpected byte"):
                await plugin.poll(device(sim, **opts))
            sim.faults.garbage = False
        # ICMP port unreachable comes back as a refused connected-UDP socket.
        with pytest.raises((DeviceUnreachable, DeviceTimeout)):
            await plugin.poll(device(sim, **opts))


@pytest.mark.anyio
async def test_no_connections_or_tasks_survive_aclose() -> None:
    sims = [ShureUlxdSimulator(seed=s) for s in range(3)]
    async with running(*sims):
        async with plugin_session() as plugin:  # asserts no session task is left
            for i, sim in enumerate(sims):
                await plugin.poll(device(sim, device_id=f"rx{i}", meter_rate="100ms"))
            assert [sim.open_connections for sim in sims] == [1, 1, 1]
        with anyio.fail_after(2):
            while any(sim.open_connections for sim in sims):
                await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_changed_options_replace_the_session() -> None:
    sim = ShureUlxdSimulator(seed=8)
    async with running(sim), plugin_session() as plugin:
        await plugin.poll(device(sim, meter_rate="0"))
        first = plugin.session("rx1")
        await plugin.poll(device(sim, meter_rate="500ms"))
        second = plugin.session("rx1")
        assert first is not None and second is not None and first is not second
        assert first.status == "closed"
        with anyio.fail_after(2):
            while "SET 0 METER_RATE 00500" not in sim.received_commands():
                await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_rep_err_to_every_heartbeat_does_not_mark_the_receiver_down() -> None:
    """A receiver that rejects DEVICE_ID still answers, so it is up (RFD: REP ERR is not "down")."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            buffer = b""
            async for data in stream:
                buffer += data
                while b">" in buffer:
                    request, _, buffer = buffer.partition(b">")
                    if b"GET 0 ALL" in request:
                        await stream.send(b"< REP 1 CHAN_NAME {Lectern } >< REP 1 TX_TYPE ULXD2 >")
                    elif b"GET" in request:
                        await stream.send(b"< REP ERR >")

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        dev = DeviceConfig(
            id="odd", plugin="shure", host="127.0.0.1", port=port,
            options={"family": "ulxd", "model": "ULXD4", "meter_rate": "0", **FAST},
        )
        async with plugin_session() as plugin:
            for _ in range(2):
                snap = await plugin.poll(dev)
                assert snap.channels[0].name == "Lectern"
                assert snap.channels[0].transmitter is not None
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_uhfr_simulator_forgets_a_controller_that_went_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    """UDP has no close: a controller that stops talking (an exporter that reconnected from a new port) must
    stop being metered, or a long show leaves a sample stream per old port running forever."""
    monkeypatch.setattr(shure_simulators, "UDP_PEER_IDLE_S", 0.5)
    sim = ShureUhfrSimulator(seed=3, model="UR4D")
    async with running(sim), await anyio.create_udp_socket(local_host="127.0.0.1") as sock:
        await sock.sendto(b"* METER 1 ALL 005 *", sim.host, sim.port)  # samples every 150 ms
        with anyio.fail_after(2):
            data, _ = await sock.receive()
        assert b"SAMPLE 1 ALL" in data
        assert sim.open_connections == 1
        # Keep talking for longer than the idle limit: still metered.
        for _ in range(4):
            await anyio.sleep(0.25)
            await sock.sendto(b"* GET 1 CHAN_NAME *", sim.host, sim.port)
        assert sim.open_connections == 1
        # Go silent: forgotten, and the samples stop.
        await anyio.sleep(0.8)
        assert sim.open_connections == 0
        with anyio.fail_after(2):  # samples every 150 ms would never leave a quiet 400 ms
            while True:
                with anyio.move_on_after(0.4) as quiet:
                    await sock.receive()
                if quiet.cancelled_caught:
                    break


@pytest.mark.anyio
async def test_simulator_remembers_only_the_latest_commands() -> None:
    """A demo fleet runs for days: its record of commands (for tests to inspect) keeps the latest ones only."""
    sim = ShureUlxdSimulator(seed=4, record_limit=5)
    async with running(sim), await anyio.connect_tcp(sim.host, sim.port) as stream:
        for n in range(12):
            await stream.send(f"< GET 1 CHAN_NAME{n} >".encode())
        with anyio.fail_after(2):
            while not sim.received or sim.received[-1][1] != "GET 1 CHAN_NAME11":
                await anyio.sleep(0.01)
        assert [text for _, text in sim.received] == [f"GET 1 CHAN_NAME{n}" for n in range(7, 12)]
