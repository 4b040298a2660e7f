"""MCP codec: every test vector of sennheiser-protocols.md §3.8, the error lines and the unit conversions."""

from __future__ import annotations

import pytest

from micboard_exporter.plugins.sennheiser.mcp import codec
from micboard_exporter.plugins.sennheiser.mcp.codec import ErrorReply, Line


def lines(wire: str) -> list[Line | ErrorReply]:
    return [codec.parse_line(t) for t in codec.split_lines(wire.encode("latin-1"))]


def test_push_0_0_1_configuration_dump() -> None:
    assert codec.encode_push(0, 0, 1) == b"Push 0 0 1\r"
    got = lines("Name Vocal 1\rFrequency 822000 2 10\rSquelch 7\rAfOut 0\rEqualizer 0\rMute 0\rPush 0 0 1\r")
    assert all(isinstance(g, Line) for g in got)
    name, freq, squelch, af_out, eq, mute, push = got
    assert isinstance(name, Line)
    assert name.rest == "Vocal 1"  # everything after the keyword: names may contain spaces
    assert isinstance(freq, Line)
    assert codec.parse_frequency(freq) == codec.Frequency(khz=822000, bank=2, channel=10)
    assert [codec.parse_int(x) for x in (squelch, af_out, eq) if isinstance(x, Line)] == [7, 0, 0]
    assert isinstance(mute, Line)
    assert codec.parse_mute(mute) is False
    assert isinstance(push, Line)
    assert codec.parse_push(push) == codec.PushEcho(0, 0, 1)


def test_push_0_100_0_cyclic_block() -> None:
    assert codec.encode_push(0, 100, 0) == b"Push 0 100 0\r"
    wire = "RF1 25 65 1\rRF2 28 78 0\rStates 3 2\rRF 50 1 1\rAF 40 65 3\rBat 70\rMsg Low_RF_Signal Low_Battery\r" \
           "Config 234\rPush 0 100 0\r"
    rf1, rf2, states, rf, af, bat, msg, config, _push = (x for x in lines(wire) if isinstance(x, Line))
    assert codec.parse_antenna_rf(rf1) == codec.AntennaRf(antenna=1, min_pct=25, max_pct=65, active=True)
    assert codec.parse_antenna_rf(rf2) == codec.AntennaRf(antenna=2, min_pct=28, max_pct=78, active=False)
    assert codec.parse_states(states).values == (3, 2)
    assert codec.parse_current_rf(rf) == codec.CurrentRf(level_pct=50, antenna=1, pilot=True)
    assert codec.parse_af(af) == (40, 65, 3)
    assert codec.parse_bat(bat) == 0.7
    # Both tokens, not only the first.
    assert codec.parse_msg(msg) == {"Low_RF_Signal", "Low_Battery"}
    assert codec.parse_int(config) == 234


def test_transmitter_off_block() -> None:
    wire = "RF1 0 0 1\rRF2 0 0 0\rStates 5 0\rRF 0 1 0\rAF 0 0 5\rBat ?\rMsg RF_Mute\rConfig 234\r"
    by_key = {x.keyword: x for x in lines(wire) if isinstance(x, Line)}
    assert codec.parse_bat(by_key["Bat"]) is None  # no transmitter: unknown, never 0 %
    assert codec.parse_msg(by_key["Msg"]) == {"RF_Mute"}
    assert codec.parse_current_rf(by_key["RF"]).pilot is False
    assert codec.parse_states(by_key["States"]).values[0] & codec.MUTE_RF


def test_frequency_and_firmware_gets() -> None:
    assert codec.encode("Frequency") == b"Frequency\r"
    (freq,) = lines("Frequency 821000 0 0\r")
    assert isinstance(freq, Line)
    assert codec.parse_frequency(freq).khz == 821000
    (fw,) = lines("FirmwareRevision 1.20.1\r")
    assert isinstance(fw, Line)
    assert (fw.keyword, fw.rest) == ("FirmwareRevision", "1.20.1")


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("1040: Invalid numbers of parameter [ Push 5 ]\r", ErrorReply(1040, "Invalid numbers of parameter", "Push 5")),
        ("1020: Value out of range [ Push 5 450 1 ]\r", ErrorReply(1020, "Value out of range", "Push 5 450 1")),
        ("1000: Invalid command [ AfPOut 24 ]\r", ErrorReply(1000, "Invalid command", "AfPOut 24")),
        ("1050: Incorrect termination\r", ErrorReply(1050, "Incorrect termination", None)),
    ],
)
def test_error_lines(wire: str, expected: ErrorReply) -> None:
    assert lines(wire) == [expected]


@pytest.mark.parametrize(("args", "ok"), [((5, 450, 1), False), ((301, 100, 1), False), ((5, 100, 8), False),
                                          ((300, 60000, 7), True), ((0, 0, 0), True)])
def test_push_ranges_are_checked_before_sending(args: tuple[int, int, int], ok: bool) -> None:
    if ok:
        assert codec.encode_push(*args) == f"Push {args[0]} {args[1]} {args[2]}\r".encode()
    else:
        with pytest.raises(ValueError, match="Push"):
            codec.encode_push(*args)


def test_lf_and_crlf_separated_datagrams_also_split() -> None:
    assert [x.keyword for x in lines("Bat 30\r\nMsg OK\nConfig 1") if isinstance(x, Line)] == ["Bat", "Msg", "Config"]


def test_msg_ok_means_no_warnings() -> None:
    (msg,) = lines("Msg OK\r")
    assert isinstance(msg, Line)
    assert codec.parse_msg(msg) == frozenset()


@pytest.mark.parametrize("wire", ["Bat full\r", "RF1 10 x 1\r", "RF 10 1\r", "AF 1 2\r", "Frequency\r"])
def test_malformed_lines_raise(wire: str) -> None:
    (line,) = lines(wire)
    assert isinstance(line, Line)
    parser = {"Bat": codec.parse_bat, "RF1": codec.parse_antenna_rf, "RF": codec.parse_current_rf,
              "AF": codec.parse_af, "Frequency": codec.parse_frequency}[line.keyword]
    with pytest.raises(codec.MalformedLine):
        parser(line)


def test_conversions() -> None:
    # 100 % = 40 dBµV = -67 dBm; 0 % = 0 dBµV = -107 dBm.
    assert codec.rf_percent_to_dbm(100) == pytest.approx(-67.0)
    assert codec.rf_percent_to_dbm(0) == pytest.approx(-107.0)
    assert codec.rf_percent_to_dbm(130) == pytest.approx(-55.0)  # above 100 % happens
    assert codec.af_percent_to_dbfs(0) == -50.0
    assert codec.af_percent_to_dbfs(100) == 0.0
    assert codec.af_percent_to_dbfs(120) == 0.0
    assert codec.af_percent_to_dbfs(40) == -30.0


def test_overlong_instruction_is_refused() -> None:
    with pytest.raises(ValueError, match="1500"):
        codec.encode("Name", "x" * 1600)
