"""SSC v1 plugin against the simulated EW-DX (Legacy mode) over loopback UDP."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest
from sennheiser_helpers import Recorder, device, eventually, other_tasks, running

from micboard_exporter.errors import DeviceTimeout
from micboard_exporter.plugins.sennheiser.ssc import SSCPlugin
from micboard_exporter.simulators.sennheiser_ssc import SennheiserSscSimulator

pytestmark = pytest.mark.anyio

FAST = {"timeout": 1.0}


def sim(**kwargs: Any) -> SennheiserSscSimulator:
    return SennheiserSscSimulator(host="127.0.0.1", seed=4, **kwargs)


def subscribes(s: SennheiserSscSimulator) -> int:
    return sum(1 for r in s.requests if isinstance(r, dict) and "osc" in r)


async def test_poll_reads_identity_settings_transmitters_and_meters() -> None:
    s = sim(model="EWDX EM 4 DANTE")
    s.channels[1].transmitter_on = False
    async with running(s):
        plugin = SSCPlugin()
        try:
            snap = await plugin.poll(device(s, password=None, options=FAST))
        finally:
            await plugin.aclose()
    assert (snap.model, snap.serial, snap.firmware) == ("EWDX EM 4 DANTE", "1023456789", "3.0.3")
    assert len(snap.channels) == 4
    one, two = snap.channels[0], snap.channels[1]
    phys = s.channels[0]
    assert one.name == phys.name.upper()[:8]
    assert one.frequency_hertz == round(phys.frequency_hz / 1000) * 1000
    assert one.rf_dbm["combined"] == pytest.approx(max(phys.received_dbm()), abs=0.06)
    assert one.link_quality_ratio == pytest.approx(round(phys.link_quality_ratio() * 100) / 100)
    assert one.audio_level_dbfs == pytest.approx(phys.audio_rms_dbfs, abs=0.06)
    assert one.transmitter is not None
    assert one.transmitter.model == "SKM"
    assert one.transmitter.battery_charge_ratio == pytest.approx(round(phys.battery_ratio * 100) / 100)
    assert one.transmitter.battery_runtime_seconds == round(phys.runtime_s / 60) * 60
    # 424 on /mates/tx2/*: no transmitter (never a 0 % battery).
    assert two.transmitter is None
    assert two.transmitter_known


@pytest.mark.parametrize("terminator", ["", "\r\n", "\0"])
async def test_any_reply_terminator_is_accepted(terminator: str) -> None:
    s = sim(model="EWDX EM 2", options={"terminator": terminator})
    async with running(s):
        plugin = SSCPlugin()
        try:
            snap = await plugin.poll(device(s, password=None, options=FAST))
        finally:
            await plugin.aclose()
    assert len(snap.channels) == 2


async def test_small_datagrams_split_requests_and_450_halves_them() -> None:
    s = sim(model="EWDX EM 4 DANTE", options={"max_datagram": 300})
    async with running(s):
        plugin = SSCPlugin()
        try:
            snap = await plugin.poll(device(s, password=None, options={**FAST, "max_datagram": 400}))
        finally:
            await plugin.aclose()
    assert [c.name for c in snap.channels] == [c.name.upper()[:8] for c in s.channels]
    assert all(c.transmitter is not None for c in snap.channels)


async def test_meter_notifications_are_published_and_events_counted() -> None:
    s = sim(model="EWDX EM 2")
    published = Recorder()
    async with running(s):
        plugin = SSCPlugin(published)
        try:
            cfg = device(s, password=None, options=FAST)
            await plugin.poll(cfg)
            s.channels[0].audio_rms_dbfs = -17.5
            s.changed()
            await published.wait_for(lambda snap: snap.channels[0].audio_level_dbfs == -17.5)
            s.channels[0].clip()
            s.changed()
            snap = await plugin.poll(cfg)  # warnings are read by the poll: the clip is seen and counted
            assert snap.channels[0].audio_clips == 1
            s.channels[0].transmitter_on = False
            s.changed()
            off = await plugin.poll(cfg)
            assert off.channels[0].transmitter is None
            assert off.channels[0].rf_dropouts == 1
        finally:
            await plugin.aclose()
    assert not [t for t in other_tasks() if t.get_name().startswith("ssc-")]


async def test_subscription_is_renewed_before_it_expires_and_after_310() -> None:
    s = sim(model="EWDX EM 2")
    published = Recorder()
    async with running(s):
        plugin = SSCPlugin(published)
        try:
            await plugin.poll(device(s, password=None, options={**FAST, "subscription_lifetime": 2}))
            assert subscribes(s) == 1
            await anyio.sleep(2.6)  # more than a lifetime, no polls: renewals alone keep it alive
            assert subscribes(s) >= 3
            assert s.subscriptions
            # The device drops the subscription early (e.g. after a reboot) and says so with 310.
            s.subscriptions[0].expires = 0
            before = subscribes(s)
            await eventually(lambda: subscribes(s) > before, timeout=1.0)
            s.channels[1].audio_rms_dbfs = -44.4
            s.changed()
            await published.wait_for(lambda snap: snap.channels[1].audio_level_dbfs == -44.4)
        finally:
            await plugin.aclose()
        # Closing cancels the subscription.
        assert s.subscriptions == []


async def test_without_a_subscription_meters_are_read_with_gets() -> None:
    s = sim(model="EWDX EM 2")
    async with running(s):
        plugin = SSCPlugin()
        try:
            snap = await plugin.poll(device(s, password=None, options={**FAST, "subscribe": False}))
        finally:
            await plugin.aclose()
    assert subscribes(s) == 0
    assert snap.channels[0].audio_level_dbfs == pytest.approx(s.channels[0].audio_rms_dbfs, abs=0.06)


async def test_subscribe_only_meters_come_from_the_subscription() -> None:
    s = sim(model="EWDX EM 2", options={"meters_subscribe_only": True})
    async with running(s):
        plugin = SSCPlugin()
        try:
            snap = await plugin.poll(device(s, password=None, options=FAST))
        finally:
            await plugin.aclose()
    assert snap.channels[0].rf_dbm["combined"] == pytest.approx(max(s.channels[0].received_dbm()), abs=0.06)


async def test_replies_from_another_port_are_ignored() -> None:
    s = sim(model="EWDX EM 2")
    async with running(s):
        plugin = SSCPlugin()
        try:
            cfg = device(s, password=None, options=FAST)
            await plugin.poll(cfg)
            session = plugin._devices[cfg.id].session
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoof:
                spoof.bind(("127.0.0.1", 0))
                spoof.sendto(b'{"rx1":{"name":"SPOOFED"}}', ("127.0.0.1", session.local_port))
                await eventually(lambda: session.strays == 1)
            snap = await plugin.poll(cfg)
            assert snap.channels[0].name != "SPOOFED"
        finally:
            await plugin.aclose()


@pytest.mark.parametrize("fault", ["stall", "garbage", "close_mid_frame"])
async def test_faults_time_out_and_the_device_recovers(fault: str) -> None:
    s = sim(model="EWDX EM 2")
    async with running(s):
        plugin = SSCPlugin()
        try:
            cfg = device(s, password=None, options={**FAST, "timeout": 0.4, "subscribe": False})
            await plugin.poll(cfg)
            setattr(s.faults, fault, True)
            with pytest.raises(DeviceTimeout, match="no answer"):
                await plugin.poll(cfg)
            setattr(s.faults, fault, False)
            snap = await plugin.poll(cfg)
            assert len(snap.channels) == 2
            if fault != "stall":
                assert plugin._devices[cfg.id].session.malformed >= 1
        finally:
            await plugin.aclose()


async def test_unknown_address_and_bad_json_answer_the_documented_errors() -> None:
    s = sim(model="EWDX EM 2")
    async with running(s), await anyio.create_connected_udp_socket("127.0.0.1", s.port) as udp:
        with anyio.fail_after(2):
            await udp.send(b'{"bogus":null}')
            assert await udp.receive() == b'{"osc":{"error":[{"bogus":[404,{"desc":"address not found"}]}]}}'
            await udp.send(b"{nope")
            assert await udp.receive() == b'{"osc":{"error":[400,{"desc":"message not understood"}]}}'
