"""SSCv2 plugin against the simulated EW-DX and Spectera over real HTTPS on loopback."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from sennheiser_helpers import PASSWORD, Recorder, device, eventually, open_fds, other_tasks, running

from micboard_exporter.config_types import DeviceConfig, Secret
from micboard_exporter.errors import AuthError, DeviceTimeout, DeviceUnreachable, ProtocolError
from micboard_exporter.plugins.sennheiser.ssc import SSCPlugin
from micboard_exporter.plugins.sennheiser.sscv2 import SSCv2Plugin
from micboard_exporter.simulators.sennheiser_ssc import SennheiserSscSimulator
from micboard_exporter.simulators.sennheiser_sscv2 import (
    SESSION_TABLE_SIZE,
    SennheiserEwdxSimulator,
    SennheiserSpecteraSimulator,
)

pytestmark = pytest.mark.anyio

FAST = {"verify_tls": False, "timeout": 2.0, "reconnect_min": 0.05, "reconnect_max": 0.2}


def ewdx(**kwargs: object) -> SennheiserEwdxSimulator:
    return SennheiserEwdxSimulator(host="127.0.0.1", port=0, seed=3, **kwargs)


def sse_tasks() -> list[str]:
    return [t.get_name() for t in other_tasks() if t.get_name().startswith("sscv2-")]


def _pinned_client(sim: SennheiserEwdxSimulator, **kwargs: object) -> httpx.AsyncClient:
    """An HTTPS client that trusts exactly the simulator's own certificate."""
    trust = ssl.create_default_context(cadata=sim.certificate_pem.decode())
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{sim.port}", verify=trust, **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def subscribed(sim: SennheiserEwdxSimulator) -> AsyncIterator[tuple[SSCv2Plugin, DeviceConfig, Recorder]]:
    """A plugin that has polled ``sim`` once and whose subscription is live; closed at the end of the block."""
    published = Recorder()
    plugin = SSCv2Plugin(published)
    try:
        cfg = device(sim, options=FAST)
        await plugin.poll(cfg)
        await eventually(lambda: any(s.paths for s in sim._subs.values()))
        yield plugin, cfg, published
    finally:
        await plugin.aclose()


async def test_poll_reports_identity_channels_and_transmitters() -> None:
    sim = ewdx(model="EWDX4CHDS")
    sim.channels[1].transmitter_on = False
    async with running(sim):
        plugin = SSCv2Plugin()
        try:
            snap = await plugin.poll(device(sim, options={**FAST, "subscribe": False}))
        finally:
            await plugin.aclose()
    assert (snap.manufacturer, snap.model, snap.serial, snap.firmware) == (
        "Sennheiser", "EWDX4CHDS", "1023456789", "3.0.3")
    assert [c.number for c in snap.channels] == [1, 2, 3, 4]
    one, two = snap.channels[0], snap.channels[1]
    phys = sim.channels[0]
    assert one.name == phys.name.upper()[:8]
    assert one.frequency_hertz == round(phys.frequency_hz / 1000) * 1000
    assert one.rf_dbm["combined"] == pytest.approx(max(phys.received_dbm()), abs=0.06)
    assert one.link_quality_ratio == pytest.approx(round(phys.link_quality_ratio() * 100) / 100)
    active = phys.active_antenna()
    assert one.antenna_active == {"a": active == 0, "b": active == 1}
    assert one.audio_level_dbfs == pytest.approx(phys.audio_rms_dbfs, abs=0.06)
    assert one.transmitter is not None
    assert one.transmitter.battery_charge_ratio == pytest.approx(round(phys.battery_ratio * 100) / 100)
    assert one.transmitter.battery_runtime_seconds == round(phys.runtime_s / 60) * 60
    assert one.transmitter.battery_type == "LION"
    assert one.transmitter.model == "EW_DX_SKM"
    # TX off: HTTP 422 on the transmitter resources and NoLink -> no transmitter, never a zero battery.
    assert two.transmitter is None
    assert two.transmitter_known


async def test_certificate_is_verified_by_default_and_ca_file_pins_it(tmp_path: Path) -> None:
    sim = ewdx(model="EWDX2CHS")
    async with running(sim):
        plugin = SSCv2Plugin()
        try:
            with pytest.raises(ProtocolError, match="certificate"):
                await plugin.poll(device(sim, options={"subscribe": False}))
            pinned = device(sim, options={"subscribe": False, "ca_file": str(sim.write_ca(tmp_path))})
            snap = await plugin.poll(pinned)
        finally:
            await plugin.aclose()
    assert snap.model == "EWDX2CHS"
    assert len(snap.channels) == 2


async def test_wrong_password_is_an_auth_error_that_names_the_setting_and_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = ewdx(model="EWDX2CHS")
    wrong = "Wrong-Passw0rd!"
    caplog.set_level(logging.DEBUG)
    async with running(sim):
        plugin = SSCv2Plugin()
        try:
            with pytest.raises(AuthError) as info:
                await plugin.poll(device(sim, password=wrong, options={**FAST, "subscribe": False}))
        finally:
            await plugin.aclose()
    assert "3rd party media control access" in str(info.value)
    assert "dev1" in caplog.text
    assert "3rd party media control access" in caplog.text
    assert wrong not in caplog.text
    assert wrong not in str(info.value)
    assert PASSWORD not in caplog.text


async def test_sse_pushes_changes_at_once_and_counts_dropouts_and_clips() -> None:
    sim = ewdx(model="EWDX2CHS")
    published = Recorder()
    async with running(sim):
        plugin = SSCv2Plugin(published)
        try:
            cfg = device(sim, options=FAST)
            await plugin.poll(cfg)
            await eventually(lambda: len(sim.active_sessions) == 1 and bool(sim._subs[sim.active_sessions[0]].paths))
            # A full GET pass right after the subscription became live (no initial values are promised).
            await plugin.poll(cfg)

            sim.channels[0].rf_dbm = [-50.0, -80.0]
            sim.changed()
            snap = await published.wait_for(lambda s: s.channels[0].rf_dbm.get("combined") == -50.0)
            assert snap.channels[0].antenna_active == {"a": True, "b": False}

            sim.channels[0].clip()
            sim.changed()
            sim.changed()  # the clip is over: warnings clear again
            await published.wait_for(lambda s: s.channels[0].audio_clips == 1)

            sim.channels[0].fade_depth_db = 80.0  # link lost while the pack is on
            sim.changed()
            lost = await published.wait_for(lambda s: s.channels[0].transmitter is None)
            assert lost.channels[0].rf_dropouts == 1
            sim.channels[0].fade_depth_db = 0.0
            sim.changed()
            # The transmitter resources come back through the next poll (a 422 resource may never notify).
            back = await plugin.poll(cfg)
            assert back.channels[0].transmitter is not None
            assert back.channels[0].rf_dropouts == 1
            assert back.channels[0].audio_clips == 1
        finally:
            await plugin.aclose()
        assert sim.active_sessions == []
        assert len(sim.sessions_deleted) == 1
    assert sse_tasks() == []


@pytest.mark.parametrize("options", [{"sse_space": True}, {"sse_split_data": True}, {}])
async def test_both_data_forms_and_multi_line_data_are_understood(options: dict[str, bool]) -> None:
    sim = ewdx(model="EWDX2CHS", options=options)
    async with running(sim), subscribed(sim) as (_, _, published):
        sim.channels[1].audio_rms_dbfs = -33.3
        sim.changed()
        await published.wait_for(lambda s: s.channels[1].audio_level_dbfs == -33.3)


async def test_one_session_is_reused_across_polls_and_replaced_after_a_drop() -> None:
    sim = ewdx(model="EWDX2CHS")
    async with running(sim):
        async with subscribed(sim) as (plugin, cfg, published):
            for _ in range(5):
                await plugin.poll(cfg)
            assert sim.streams_opened == 1
            assert len(sim.active_sessions) == 1
            first = sim.active_sessions[0]
            # A live poll reads the session, not every resource.
            assert ("GET", f"/api/ssc/state/subscriptions/{first}") in sim.requests

            sim.drop_streams()
            await eventually(lambda: sim.streams_opened == 2 and any(s.paths for s in sim._subs.values()))
            assert first in sim.sessions_deleted  # the stale session is given back
            assert len(sim.active_sessions) == 1
            sim.channels[0].audio_rms_dbfs = -21.5
            sim.changed()
            await published.wait_for(lambda s: s.channels[0].audio_level_dbfs == -21.5)
        assert sim.active_sessions == []


async def test_plain_gets_work_when_subscribing_fails() -> None:
    sim = ewdx(model="EWDX2CHS")
    async with running(sim):
        plugin = SSCv2Plugin()
        try:
            cfg = device(sim, options=FAST)
            sim.channels[0].audio_rms_dbfs = -30.0
            sim.faults.refuse = False
            snap = await plugin.poll(cfg)
            sim.channels[0].audio_rms_dbfs = -40.0
            # Make every event stream die at once: the plugin keeps answering polls with GETs.
            sim.drop_streams()
            snap = await plugin.poll(cfg)
            for _ in range(3):
                sim.drop_streams()
                await anyio.sleep(0.02)
                snap = await plugin.poll(cfg)
            assert snap.channels[0].audio_level_dbfs == -40.0
        finally:
            await plugin.aclose()


@pytest.mark.parametrize(
    ("fault", "error"),
    [("stall", DeviceTimeout), ("refuse", DeviceUnreachable), ("close_mid_frame", DeviceUnreachable),
     # Bytes that never form an HTTP head: the client waits for the end of the head until the deadline.
     ("garbage", (DeviceTimeout, DeviceUnreachable))],
)
async def test_faults_map_to_typed_errors_and_the_device_recovers(
    fault: str, error: type[Exception] | tuple[type[Exception], ...]
) -> None:
    sim = ewdx(model="EWDX2CHS")
    async with running(sim):
        plugin = SSCv2Plugin()
        try:
            cfg = device(sim, options={**FAST, "timeout": 0.5, "subscribe": False})
            await plugin.poll(cfg)
            setattr(sim.faults, fault, True)
            with pytest.raises(error):
                await plugin.poll(cfg)
            setattr(sim.faults, fault, False)
            snap = await plugin.poll(cfg)
            assert len(snap.channels) == 2
        finally:
            await plugin.aclose()


async def test_split_bytes_replies_are_reassembled() -> None:
    sim = ewdx(model="EWDX2CHS")
    sim.faults.split_bytes = True
    async with running(sim):
        plugin = SSCv2Plugin()
        try:
            snap = await plugin.poll(device(sim, options={**FAST, "subscribe": False}))
        finally:
            await plugin.aclose()
    assert snap.model == "EWDX2CHS"


async def test_spectera_base_station_maps_paired_mobile_devices() -> None:
    sim = SennheiserSpecteraSimulator(host="127.0.0.1", port=0, seed=5)
    sim.channels[2].transmitter_on = False
    sim.syncing.add(3)
    published = Recorder()
    async with running(sim):
        plugin = SSCv2Plugin(published)
        try:
            cfg = device(sim, options={**FAST, "username": "controlSennheiser"})
            snap = await plugin.poll(cfg)
            assert snap.model == "SPECTERA_BASE"
            assert len(snap.channels) == 6
            first = snap.channels[0]
            phys = sim.channels[0]
            assert first.name == phys.name
            assert first.frequency_hertz == round(phys.frequency_hz / 1000) * 1000
            assert first.transmitter is not None
            assert first.transmitter.model == "SKM"
            assert first.transmitter.battery_charge_ratio == pytest.approx(round(phys.battery_ratio * 100) / 100)
            assert first.link_quality_ratio == round(phys.link_quality_ratio() * 4) / 4
            assert snap.channels[2].transmitter is None  # off: fill level -1 is unknown, not 0 %
            assert snap.channels[3].transmitter_known is False  # still syncing

            await eventually(lambda: any(s.paths for s in sim._subs.values()))
            await plugin.poll(cfg)
            sim.unpair(5)
            gone = await published.wait_for(lambda s: len(s.channels) == 5)
            assert [c.name for c in gone.channels] == [c.name for c in sim.channels[:5]]
        finally:
            await plugin.aclose()


async def test_config_change_replaces_the_session_and_forget_closes_it() -> None:
    sim = ewdx(model="EWDX2CHS")
    async with running(sim):
        plugin = SSCv2Plugin()
        try:
            await plugin.poll(device(sim, options=FAST))
            await eventually(lambda: len(sim.active_sessions) == 1)
            await plugin.poll(device(sim, options={**FAST, "full_refresh_polls": 3}))
            await eventually(lambda: len(sim.sessions_deleted) == 1 and len(sim.active_sessions) == 1)
            await plugin.forget("dev1")
            assert sim.active_sessions == []
            assert sse_tasks() == []
        finally:
            await plugin.aclose()


async def test_every_simulator_entry_for_the_exporter_config_polls() -> None:
    """``exporter_device`` (used by ``simulate``/``demo``) yields entries the plugins can poll as given."""
    sims = [ewdx(model="EWDX2CHS"), SennheiserSpecteraSimulator(host="127.0.0.1", port=0, seed=1),
            SennheiserSscSimulator(host="127.0.0.1", port=0, model="EWDX EM 2")]
    async with running(*sims):
        for sim in sims:
            entry = sim.exporter_device("demo")
            options = dict(entry.get("options", {}))
            secrets = {}
            if "password_file" in options:  # what the core's secret resolution does
                path = Path(options.pop("password_file"))
                secrets["password"] = Secret(path.read_text().rstrip("\r\n"), f"file:{path}")
            plugin = SSCv2Plugin() if entry["plugin"] == "sennheiser-sscv2" else SSCPlugin()
            try:
                snap = await plugin.poll(DeviceConfig(id="demo", plugin=entry["plugin"], host=entry["host"],
                                                      port=entry["port"], options=options, secrets=secrets))
            finally:
                await plugin.aclose()
            assert len(snap.channels) == len(sim.channels)


async def test_simulator_reproduces_the_reference_status_codes() -> None:
    """§1.8: unauthenticated version/identity, 401 without credentials, 404, 400 {path,error}, 422."""

    sim = ewdx(model="EWDX4CHDS")
    async with running(sim), _pinned_client(sim) as client:  # the certificate check stays on
        assert (await client.get("/api/ssc/version")).json() == {"protocol": "2.3", "schema": "1.0"}
        assert (await client.get("/api/device/identity")).json()["product"] == "EWDX4CHDS"
        assert (await client.get("/api/channel/0")).status_code == 401
        auth = httpx.BasicAuth("api", PASSWORD)
        assert (await client.get("/api/channel/7", auth=auth)).status_code == 404
        unknown = "/api/ssc/state/subscriptions/00000000-0000-0000-0000-000000000000"
        assert (await client.get(unknown, auth=auth)).status_code == 422
        async with client.stream("GET", "/api/ssc/state/subscriptions", auth=auth,
                                 headers={"Accept": "text/event-stream"}) as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            uuid = stream.headers["content-location"]
            first = await anext(stream.aiter_text())
            assert first.startswith(f'event:open\ndata:{{"path":"/api/ssc/state/subscriptions/{uuid}"')
            bogus = await client.put(f"/api/ssc/state/subscriptions/{uuid}/add", auth=auth, json=["/api/bogus"])
            assert (bogus.status_code, bogus.json()) == (400, {"path": "/api/bogus", "error": 404})
            assert (await client.delete(f"/api/ssc/state/subscriptions/{uuid}", auth=auth)).status_code == 200


async def test_a_session_the_device_forgot_is_replaced_on_the_next_poll() -> None:
    sim = ewdx(model="EWDX2CHS")
    async with running(sim), subscribed(sim) as (plugin, cfg, published):
        await plugin.poll(cfg)
        forgotten = sim.active_sessions[0]
        sim._subs.pop(forgotten)  # e.g. the session table was reset; the old stream stays open
        await plugin.poll(cfg)  # GET of the session answers 422: the plugin starts over
        await eventually(lambda: sim.streams_opened == 2 and any(s.paths for s in sim._subs.values()))
        sim.channels[1].audio_rms_dbfs = -12.5
        sim.changed()
        await published.wait_for(lambda s: s.channels[1].audio_level_dbfs == -12.5)


async def test_a_stalled_simulator_lets_go_of_a_client_that_gave_up() -> None:
    """A stall never answers, but a client that times out and closes must not leave the connection (and its
    task) behind: over a long soak every poll of a stalled device would otherwise leak one."""
    sim = ewdx(model="EWDX2CHS")
    async with running(sim):
        before = open_fds()
        sim.faults.stall = True
        for _ in range(5):
            async with _pinned_client(sim) as client:
                with pytest.raises(httpx.ReadTimeout):
                    await client.get("/api/device/identity", timeout=0.3)
                assert open_fds() > before  # both ends of this connection, held open by the stall
        await eventually(lambda: open_fds() == before)  # the client closed: so does the simulator
        sim.faults.stall = False
        async with _pinned_client(sim) as client:
            assert (await client.get("/api/device/identity")).status_code == 200


async def test_the_session_table_is_bounded_and_never_drops_a_live_stream() -> None:
    """Sessions outlive their stream until DELETEd; when a client's DELETEs were lost, the oldest of those
    orphaned sessions make room for new ones, and a session still streaming is kept."""
    sim = ewdx(model="EWDX2CHS")
    auth = httpx.BasicAuth("api", PASSWORD)
    sse = {"Accept": "text/event-stream"}
    async with (running(sim), _pinned_client(sim, auth=auth) as client,
                client.stream("GET", "/api/ssc/state/subscriptions", headers=sse) as live):
        live_uuid = live.headers["content-location"]
        for _ in range(SESSION_TABLE_SIZE * 2):
            async with client.stream("GET", "/api/ssc/state/subscriptions", headers=sse) as orphan:
                await anext(orphan.aiter_text())
            # The device notices the closed stream (only the live one is left streaming).
            await eventually(lambda: sum(s.streaming for s in sim._subs.values()) == 1)
        assert len(sim.active_sessions) == SESSION_TABLE_SIZE
        assert live_uuid in sim.active_sessions
        assert (await client.get(f"/api/ssc/state/subscriptions/{live_uuid}")).status_code == 200


async def test_a_session_a_fault_kept_us_from_deleting_is_given_back_when_the_device_answers() -> None:
    """Devices hold few sessions per user: one whose DELETE was lost (the device stopped answering as the
    stream broke) is deleted once the device is back, not left to fill the table."""
    sim = ewdx(model="EWDX2CHS")
    async with running(sim):
        async with subscribed(sim) as (_, _, published):
            lost = sim.active_sessions[0]
            sim.faults.refuse = True  # the stream breaks and the DELETE that follows is refused
            sim.drop_streams()
            await eventually(lambda: sim.streams_opened == 1 and not any(s.streaming for s in sim._subs.values()))
            await anyio.sleep(0.3)  # reconnect attempts meet the refusal too
            assert lost in sim.active_sessions and lost not in sim.sessions_deleted
            sim.faults.refuse = False
            await eventually(lambda: lost in sim.sessions_deleted)
            await eventually(lambda: len(sim.active_sessions) == 1 and sim.active_sessions[0] != lost)
            sim.channels[0].audio_rms_dbfs = -17.5
            sim.changed()
            await published.wait_for(lambda s: s.channels[0].audio_level_dbfs == -17.5)
        assert sim.active_sessions == []
