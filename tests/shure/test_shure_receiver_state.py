"""Folding decoded frames into receiver state: presence, counters, staleness and snapshots."""

from __future__ import annotations

from micboard_exporter.plugins.shure.codec import Family, decode, parse_frame
from micboard_exporter.plugins.shure.receiver import ReceiverState


def _feed(state: ReceiverState, *lines: str) -> bool:
    changed = False
    for line in lines:
        changed = state.apply(decode(state.family, parse_frame(line))) or changed
    return changed


def test_dropout_needs_a_present_transmitter_and_counts_edges_only() -> None:
    state = ReceiverState(Family.ULXD, "ULXD4")
    _feed(state, "REP 1 TX_TYPE ULXD2", "REP 1 BATT_BARS 004", "SAMPLE 1 ALL AX 080 020")
    _feed(state, "SAMPLE 1 ALL XX 010 000", "SAMPLE 1 ALL XX 010 000")  # one loss, however long
    _feed(state, "SAMPLE 1 ALL XB 070 020", "SAMPLE 1 ALL XX 010 000")
    assert state.snapshot("rx", "h").channels[0].rf_dropouts == 2
    # Pack switched off: the receiver says so, and the silence that follows is not a dropout.
    _feed(state, "REP 1 TX_TYPE UNKN", "SAMPLE 1 ALL AX 080 020", "SAMPLE 1 ALL XX 010 000")
    snap = state.snapshot("rx", "h")
    assert snap.channels[0].rf_dropouts == 2
    assert snap.channels[0].transmitter is None


def test_clips_count_the_start_of_each_overload() -> None:
    state = ReceiverState(Family.AXTD, "AD4D")
    quiet = "SAMPLE 2 ALL 005 031 102 102 BB 31 086 31 065"
    loud = "SAMPLE 2 ALL 005 159 120 110 BB 31 086 31 065"
    _feed(state, quiet, loud, loud, quiet, loud)
    assert [ch.audio_clips for ch in state.snapshot("rx", "h").channels] == [0, 2]


def test_reset_after_reconnect_forgets_readings_but_keeps_counters() -> None:
    state = ReceiverState(Family.ULXD, "ULXD4D")
    _feed(state, "REP 2 TX_TYPE ULXD1", "SAMPLE 2 ALL AX 080 020", "SAMPLE 2 ALL XX 010 000")
    state.reset_readings()
    ch = state.snapshot("rx", "h").channels[1]
    assert ch.rf_dropouts == 1
    assert ch.transmitter is None
    assert not ch.transmitter_known  # nothing said yet on the new connection: no presence sample
    assert ch.rf_dbm == {}


def test_transmitter_readings_vanish_with_the_transmitter() -> None:
    state = ReceiverState(Family.SLXD, "SLXD4")
    _feed(state, "REP 1 TX_MODEL SLXD2", "REP 1 TX_BATT_BARS 004", "REP 1 TX_BATT_MINS 00125")
    tx = state.snapshot("rx", "h").channels[0].transmitter
    assert tx is not None
    assert (tx.model, tx.battery_bars, tx.battery_runtime_seconds) == ("SLXD2", 4, 7500.0)
    _feed(state, "REP 1 TX_MODEL UNKNOWN")
    assert state.snapshot("rx", "h").channels[0].transmitter is None


def test_uhfr_presence_comes_from_the_battery_reading() -> None:
    state = ReceiverState(Family.UHFR, "UR4D")
    _feed(state, "REPORT 1 TX_BAT 3", "REPORT 2 TX_BAT U")
    snap = state.snapshot("rx", "h")
    assert snap.channels[0].transmitter is not None
    assert snap.channels[1].transmitter is None
    assert snap.channels[1].transmitter_known


def test_unchanged_state_reuses_the_snapshot_and_a_change_rebuilds_it() -> None:
    state = ReceiverState(Family.ULXD, "ULXD4D")
    _feed(state, "REP 1 CHAN_NAME {Vox1    }", "REP 1 TX_TYPE ULXD2")
    first = state.snapshot("rx", "h")
    assert not _feed(state, "REP 1 CHAN_NAME {Vox1    }")  # same value again: no change, no publish
    again = state.snapshot("rx", "h")
    assert again == first
    assert again.channels is first.channels
    assert _feed(state, "REP 1 CHAN_NAME {Vox2    }")
    assert state.snapshot("rx", "h").channels[0].name == "Vox2"


def test_channel_count_from_model_reply_or_highest_channel_seen() -> None:
    state = ReceiverState(Family.ULXD)
    _feed(state, "REP 3 CHAN_NAME {C}")
    assert len(state.snapshot("rx", "h").channels) == 3
    _feed(state, "REP MODEL {ULXD4Q                          }")
    snap = state.snapshot("rx", "h")
    assert snap.model == "ULXD4Q"
    assert len(snap.channels) == 4
