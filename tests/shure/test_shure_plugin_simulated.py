"""The shure plugin against protocol simulators of every family, over real loopback sockets."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from shure_helpers import Recorder, device, options, plugin_session, running

from micboard_exporter.errors import DeviceTimeout
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.simulators.shure import (
    EOF_MARK,
    ShureAxtdSimulator,
    ShureP10tSimulator,
    ShureQlxdSimulator,
    ShureSimulator,
    ShureSlxdSimulator,
    ShureUhfrSimulator,
    ShureUlxdSimulator,
)

ALL_FAMILIES = [
    pytest.param(ShureUlxdSimulator, "ULXD4Q", 4, id="ulxd"),
    pytest.param(ShureQlxdSimulator, "QLXD4", 1, id="qlxd"),
    pytest.param(ShureSlxdSimulator, "SLXD4D", 2, id="slxd"),
    pytest.param(ShureAxtdSimulator, "AD4Q", 4, id="axtd"),
    pytest.param(ShureUhfrSimulator, "UR4D", 2, id="uhfr"),
    pytest.param(ShureP10tSimulator, "P10T", 2, id="p10t"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("sim_cls", "model", "channels"), ALL_FAMILIES)
async def test_every_family_polls_names_frequencies_and_transmitters(
    sim_cls: type[ShureSimulator], model: str, channels: int
) -> None:
    sim = sim_cls(seed=3, model=model)
    async with running(sim), plugin_session() as plugin:
        snap = await plugin.poll(device(sim, meter_rate="0"))
    assert snap.manufacturer == "Shure"
    assert snap.model == model
    assert len(snap.channels) == channels
    for ch, phys in zip(snap.channels, sim.channels, strict=True):
        # Names lose padding (and UHF-R underscores); long names are cut to the family's width.
        assert ch.name is not None
        assert phys.name.startswith(ch.name)
        assert ch.frequency_hertz == pytest.approx(round(phys.frequency_hz / 1000) * 1000)
        assert ch.transmitter is not None
        if sim_cls is ShureP10tSimulator:
            assert ch.transmitter.model == "P10T"
            assert ch.transmitter.battery_bars is None  # an in-ear transmitter reports no pack battery
        else:
            # UHF-R shows 1-5 bars (U = none), the others 0-5.
            expected = max(1, phys.battery_bars) if sim_cls is ShureUhfrSimulator else phys.battery_bars
            assert ch.transmitter.battery_bars == expected


@pytest.mark.anyio
@pytest.mark.parametrize(("sim_cls", "model", "channels"), ALL_FAMILIES)
async def test_metering_is_stopped_before_every_close(
    sim_cls: type[ShureSimulator], model: str, channels: int
) -> None:
    sim = sim_cls(seed=1, model=model)
    async with running(sim), plugin_session() as plugin:
        await plugin.poll(device(sim, meter_rate="100ms"))
        # Metering starts at a random phase within one period (receivers must not meter in lock step).
        with anyio.fail_after(2):
            while not any("METER" in c and "STOP" not in c and "00000" not in c for c in sim.received_commands()):
                await anyio.sleep(0.01)
        await plugin.forget("rx1")
        if sim.uses_udp:
            # UDP has no close; the last commands must stop metering on every channel.
            with anyio.fail_after(2):
                while sim.received_commands()[-channels:] != [f"METER {n} ALL STOP" for n in range(1, channels + 1)]:
                    await anyio.sleep(0.01)
        else:
            with anyio.fail_after(2):
                while EOF_MARK not in sim.received_commands():
                    await anyio.sleep(0.01)
            commands = sim.received_commands()
            stops = [c for c in commands if c.startswith("SET") and c.endswith("METER_RATE 00000")]
            starts = [c for c in commands if c.startswith("SET") and "METER_RATE" in c and c not in stops]
            assert starts, commands
            last_start = max(commands.index(c) for c in starts)
            assert stops and commands.index(stops[-1]) > last_start
            assert commands[-1] == EOF_MARK
            assert set(commands[commands.index(stops[0]) : -1]) <= set(stops)


@pytest.mark.anyio
async def test_ulxd_units_from_sample_follow_the_ulxd_document() -> None:
    sim = ShureUlxdSimulator(seed=2, model="ULXD4D")
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        await plugin.poll(device(sim, meter_rate="100ms"))
        snap = await recorder.wait_for(lambda s: "combined" in s.channels[0].rf_dbm)
    ch, phys = snap.channels[0], sim.channels[0]
    # dBm = raw - 128 and dBFS = raw - 50 (D-ULXD): the simulator rounds to whole raw steps.
    assert ch.rf_dbm["combined"] == pytest.approx(max(phys.received_dbm()), abs=0.5)
    assert ch.audio_level_dbfs == pytest.approx(phys.audio_rms_dbfs, abs=0.5)
    best = phys.active_antenna()
    assert dict(ch.antenna_active) == {"a": best == 0, "b": best == 1}
    assert ch.transmitter is not None
    assert ch.transmitter.battery_charge_ratio == pytest.approx(phys.battery_ratio, abs=0.005)
    assert ch.transmitter.battery_runtime_seconds == pytest.approx(phys.runtime_s, abs=60)
    assert ch.transmitter.battery_temperature_celsius == pytest.approx(phys.battery_temperature_c)
    assert ch.transmitter.battery_cycles == phys.battery_cycles
    assert ch.transmitter.power_locked is False
    assert ch.transmitter.muted is None  # ULXD2 has no mute: UNKN, so no sample
    assert snap.firmware == "2.7.6.0"


@pytest.mark.anyio
async def test_axient_quality_rf_per_antenna_and_quadversity() -> None:
    sim = ShureAxtdSimulator(seed=4, model="AD4Q", options={"quadversity": True})
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        await plugin.poll(device(sim, meter_rate="100ms"))
        snap = await recorder.wait_for(lambda s: len(s.channels[1].antenna_active) == 4)
    ch, phys = snap.channels[1], sim.channels[1]
    levels = phys.received_dbm()
    assert ch.rf_dbm["a"] == pytest.approx(levels[0], abs=0.5)
    assert ch.rf_dbm["b"] == pytest.approx(levels[1], abs=0.5)
    assert set(ch.rf_dbm) == {"a", "b", "c", "d"}
    assert ch.link_quality_ratio == pytest.approx(round(phys.link_quality_ratio() * 5) / 5)
    assert ch.audio_level_dbfs == pytest.approx(phys.audio_rms_dbfs, abs=0.5)
    assert ch.audio_peak_dbfs == pytest.approx(phys.audio_peak_dbfs, abs=0.5)
    assert ch.interference is False
    assert ch.encryption_error is False


@pytest.mark.anyio
async def test_axient_fd_c_layout_is_understood() -> None:
    sim = ShureAxtdSimulator(seed=5, model="AD4D", options={"fd_mode": "FD-C"})
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        await plugin.poll(device(sim, meter_rate="100ms"))
        snap = await recorder.wait_for(lambda s: bool(s.channels[0].antenna_active))
    assert set(snap.channels[0].rf_dbm) == {"a", "b"}
    assert any(snap.channels[0].antenna_active.values())


@pytest.mark.anyio
async def test_slxd_sample_gives_combined_rf_and_audio() -> None:
    sim = ShureSlxdSimulator(seed=6)
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        first = await plugin.poll(device(sim, meter_rate="100ms"))
        snap = await recorder.wait_for(lambda s: "combined" in s.channels[0].rf_dbm)
    # The seed (GET ALL) has per-antenna RSSI; once SAMPLE (combined only) runs, only the combined level shows.
    assert set(first.channels[0].rf_dbm) == {"a", "b"}
    assert dict(snap.channels[0].rf_dbm) == {
        "combined": pytest.approx(max(sim.channels[0].received_dbm()), abs=0.5)
    }
    assert snap.channels[0].audio_peak_dbfs == pytest.approx(sim.channels[0].audio_peak_dbfs, abs=0.5)


@pytest.mark.anyio
async def test_slxd_without_get_all_is_seeded_property_by_property() -> None:
    sim = ShureSlxdSimulator(seed=7, options={"get_all": False})
    async with running(sim), plugin_session() as plugin:
        snap = await plugin.poll(device(sim, meter_rate="0"))
    assert "GET 0 ALL" in sim.received_commands()
    assert "GET 2 TX_BATT_BARS" in sim.received_commands()
    assert snap.channels[1].transmitter is not None
    assert snap.channels[1].transmitter.battery_bars == sim.channels[1].battery_bars


@pytest.mark.anyio
async def test_family_is_detected_from_the_model_reply() -> None:
    sim = ShureAxtdSimulator(seed=8, model="AD4D")
    async with running(sim), plugin_session() as plugin:
        snap = await plugin.poll(device(sim, family="auto", model=None))
    assert snap.model == "AD4D"
    assert len(snap.channels) == 2
    assert sim.received_commands()[0] == "GET MODEL"


@pytest.mark.anyio
async def test_qlxd_without_model_reply_cannot_be_auto_detected() -> None:
    sim = ShureQlxdSimulator(seed=9)
    async with running(sim), plugin_session() as plugin:
        with pytest.raises(DeviceTimeout, match=r"detect model: no reply to < GET MODEL >.*set options.family") as info:
            await plugin.poll(device(sim, **options(family="auto", model=None)))
    assert f"127.0.0.1:{sim.port}" in str(info.value)


@pytest.mark.anyio
async def test_unsupported_property_silence_does_not_mark_the_device_down() -> None:
    """QLX-D never answers MODEL and UHF-R no device properties; both still poll fine, repeatedly."""
    qlxd, uhfr = ShureQlxdSimulator(seed=1), ShureUhfrSimulator(seed=2, model="UR4S")
    async with running(qlxd, uhfr), plugin_session() as plugin:
        for _ in range(3):
            assert (await plugin.poll(device(qlxd, device_id="q"))).model == "QLXD4"
            snap = await plugin.poll(device(uhfr, device_id="u"))
            assert len(snap.channels) == 1


@pytest.mark.anyio
async def test_transmitter_off_and_battery_change_are_pushed_at_once() -> None:
    sim = ShureUlxdSimulator(seed=10, model="ULXD4D")
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        await plugin.poll(device(sim, meter_rate="0"))
        sim.channels[0].battery_ratio = 0.15
        start = anyio.current_time()
        sim.changed()
        snap = await recorder.wait_for(lambda s: _bars(s, 0) == 1)
        lag = recorder.snapshots[-1][0] - start
        assert lag < 0.1
        sim.channels[1].transmitter_on = False
        sim.changed()
        snap = await recorder.wait_for(lambda s: s.channels[1].transmitter is None)
    assert snap.channels[1].transmitter_known
    assert _bars(snap, 0) == 1


def _dropouts_are(n: int) -> Callable[[DeviceSnapshot], bool]:
    return lambda s: s.channels[0].rf_dropouts == n


def _clips_are(n: int) -> Callable[[DeviceSnapshot], bool]:
    return lambda s: s.channels[0].audio_clips == n


def _bars(snap: DeviceSnapshot, index: int) -> int | None:
    tx = snap.channels[index].transmitter
    return None if tx is None else tx.battery_bars


@pytest.mark.anyio
async def test_rf_dropouts_are_counted_between_polls() -> None:
    sim = ShureUlxdSimulator(seed=11, model="ULXD4")
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        dev = device(sim, meter_rate="100ms")
        await plugin.poll(dev)
        await recorder.wait_for(lambda s: any(s.channels[0].antenna_active.values()))
        for expected in (1, 2):
            sim.channels[0].fade_depth_db = 80.0  # link lost, transmitter still on
            await recorder.wait_for(_dropouts_are(expected))
            sim.channels[0].fade_depth_db = 0.0
            await recorder.wait_for(lambda s: any(s.channels[0].antenna_active.values()))
        # Switching the pack off is not a dropout.
        sim.channels[0].transmitter_on = False
        sim.changed()
        await recorder.wait_for(lambda s: s.channels[0].transmitter is None)
        await anyio.sleep(0.25)
        snap = await plugin.poll(dev)
    assert snap.channels[0].rf_dropouts == 2


@pytest.mark.anyio
@pytest.mark.parametrize("sim_cls", [ShureUlxdSimulator, ShureAxtdSimulator, ShureSlxdSimulator, ShureUhfrSimulator])
async def test_audio_clips_are_counted(sim_cls: type[ShureSimulator]) -> None:
    sim = sim_cls(seed=12)
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        dev = device(sim, meter_rate="100ms")
        await plugin.poll(dev)
        for expected in (1, 2):
            sim.channels[0].clip()
            await recorder.wait_for(_clips_are(expected))
            sim.channels[0].audio_peak_dbfs = -12.0
            # Let a clean sample through: back-to-back overload samples are one sustained clip, not two.
            await anyio.sleep(0.25)
        snap = await plugin.poll(dev)
    assert snap.channels[0].audio_clips == 2
    assert all(ch.audio_clips == 0 for ch in snap.channels[1:])


@pytest.mark.anyio
async def test_p10t_rf_mute_shows_as_transmitter_off() -> None:
    sim = ShureP10tSimulator(seed=13)
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        await plugin.poll(device(sim, meter_rate="100ms"))
        sim.channels[1].transmitter_on = False
        sim.changed()
        snap = await recorder.wait_for(lambda s: s.channels[1].transmitter is None)
    assert snap.channels[0].transmitter is not None
    assert snap.channels[0].frequency_hertz == round(sim.channels[0].frequency_hz / 1000) * 1000
    # The PSM1000 framing (REPORT, CRLF after each frame) was read without a single undecodable frame.
    session = plugin.session("rx1")
    assert session is None  # closed by plugin_session on exit


@pytest.mark.anyio
async def test_fast_metering_is_coalesced_but_state_changes_are_not() -> None:
    """At 100 ms metering with the audio moving every sample, meter-only publishes are limited to about
    two a second, while a pushed battery change still goes out at once."""
    sim = ShureUlxdSimulator(seed=14, model="ULXD4")
    recorder = Recorder()
    async with running(sim), plugin_session(recorder) as plugin:
        await plugin.poll(device(sim, meter_rate="100ms"))
        await recorder.wait_for(lambda s: s.channels[0].audio_level_dbfs is not None)
        start = len(recorder.snapshots)
        levels = [-30.0, -20.0]
        for i in range(15):  # 1.5 s: ~15 SAMPLE batches, each with a different audio level
            sim.channels[0].audio_rms_dbfs = levels[i % 2]
            await anyio.sleep(0.1)
        meter_publishes = len(recorder.snapshots) - start
        assert 2 <= meter_publishes <= 5, meter_publishes
        sim.channels[0].battery_ratio = 0.1
        pushed_at = anyio.current_time()
        sim.changed()
        await recorder.wait_for(lambda s: _bars(s, 0) == 1)
        assert recorder.snapshots[-1][0] - pushed_at < 0.1
