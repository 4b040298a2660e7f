"""Framing and sentinel rules of the Shure codec: how bytes on the wire become frames and values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micboard_exporter.plugins.shure.codec import (
    Family,
    FrameReader,
    FramingError,
    decode,
    encode,
    meter_rate_command,
    model_info,
    parse_frame,
    split_datagram,
)

STREAM = (
    b"< REP 1 CHAN_NAME {Vox > 1 } >\r\n"
    b"< SAMPLE 1 ALL XB 035 040 >"
    b"  < REP 2 BATT_BARS 004 >\n"
    b"< REPORT 1 RF_MUTE 0 >\r\n"
)
EXPECTED = [
    "REP 1 CHAN_NAME {Vox > 1 } ",
    "SAMPLE 1 ALL XB 035 040 ",
    "REP 2 BATT_BARS 004 ",
    "REPORT 1 RF_MUTE 0 ",
]


def _strip(frames: list[str]) -> list[str]:
    return [f.strip() for f in frames]


def test_several_frames_in_one_read_with_crlf_and_spaces_between() -> None:
    assert _strip(FrameReader().feed(STREAM)) == _strip(EXPECTED)


def test_frames_split_byte_by_byte() -> None:
    reader = FrameReader()
    frames: list[str] = []
    for i in range(len(STREAM)):
        frames.extend(reader.feed(STREAM[i : i + 1]))
    assert _strip(frames) == _strip(EXPECTED)
    assert reader.pending == 0


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12, unique=True))
def test_any_split_of_the_stream_gives_the_same_frames(cuts: list[int]) -> None:
    reader = FrameReader()
    bounds = [0, *sorted(cuts), len(STREAM)]
    frames: list[str] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        frames.extend(reader.feed(STREAM[start:end]))
    assert _strip(frames) == _strip(EXPECTED)


def test_a_partial_frame_waits_for_the_rest() -> None:
    reader = FrameReader()
    assert reader.feed(b"< REP 1 CHAN_NAME {Vo") == []
    assert reader.pending == len(b"< REP 1 CHAN_NAME {Vo")
    assert _strip(reader.feed(b"x1    } >")) == ["REP 1 CHAN_NAME {Vox1    }"]


def test_padded_string_keeps_inner_spaces_and_loses_padding() -> None:
    frame = parse_frame("REP 1 CHAN_NAME {Lead Vox                       } ")
    assert frame.args == ("Lead Vox",)
    assert decode(Family.AXTD, frame).channel_fields == {"name": "Lead Vox"}


def test_blank_padded_string_is_unknown() -> None:
    assert decode(Family.ULXD, parse_frame("REP DEVICE_ID {        }")).device_fields == {"device_id": None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\xff\xfe garbage", "unexpected byte 0x00 outside a frame at offset 0"),
        (b"\r\n\xff", "unexpected byte 0xff outside a frame at offset 2"),
        (b"REP 1 BATT_BARS 004 >", "unexpected byte 0x52"),
        (b"< REP 1 CHAN_NAME {\xe9} >", "non-ASCII byte 0xe9"),
        (b"< REP 1 CHAN_NAME \x07 >", "control byte 0x07"),
    ],
)
def test_garbage_is_a_framing_error(data: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message):
        FrameReader().feed(data)


def test_an_unterminated_frame_is_bounded() -> None:
    reader = FrameReader(max_frame_bytes=64)
    with pytest.raises(FramingError, match="exceeds 64 bytes"):
        reader.feed(b"< REP 1 CHAN_NAME " + b"x" * 100)
    assert reader.pending == 0


def test_empty_frame_is_rejected() -> None:
    with pytest.raises(FramingError, match="empty"):
        parse_frame("  ")
    with pytest.raises(FramingError, match="no property"):
        parse_frame("REP 1")


def test_uhfr_datagram_with_two_frames_and_a_truncated_one() -> None:
    assert _strip(split_datagram(b"* REPORT 1 TX_BAT 4 ** REPORT 2 TX_BAT U *")) == [
        "REPORT 1 TX_BAT 4",
        "REPORT 2 TX_BAT U",
    ]
    with pytest.raises(FramingError, match="ends inside a frame"):
        split_datagram(b"* REPORT 1 TX_B")


# ---- sentinels: every "not available" code of every numeric width becomes None ----------------------


@pytest.mark.parametrize("raw", ["252", "253", "254", "255"])
@pytest.mark.parametrize(
    ("family", "prop", "key"),
    [
        (Family.ULXD, "BATT_BARS", "battery_bars"),
        (Family.ULXD, "BATT_CHARGE", "battery_charge_ratio"),
        (Family.QLXD, "BATT_HEALTH", "battery_health_ratio"),
        (Family.QLXD, "BATT_TEMP_C", "battery_temperature_celsius"),
        (Family.SLXD, "TX_BATT_BARS", "battery_bars"),
        (Family.SLXD, "AUDIO_LEVEL_RMS", "audio_level_dbfs"),
        (Family.AXTD, "TX_BATT_CHARGE_PERCENT", "battery_charge_ratio"),
        (Family.AXTD, "CHAN_QUALITY", "link_quality_ratio"),
        (Family.AXTD, "TX_BATT_TEMP_C", "battery_temperature_celsius"),
        (Family.AXTD, "AUDIO_LEVEL_PEAK", "audio_peak_dbfs"),
    ],
)
def test_three_digit_sentinels(family: Family, prop: str, key: str, raw: str) -> None:
    fields = decode(family, parse_frame(f"REP 1 {prop} {raw}")).channel_fields
    assert key in fields
    assert fields[key] is None  # type: ignore[literal-required]


@pytest.mark.parametrize("raw", ["65532", "65533", "65534", "65535"])
@pytest.mark.parametrize(
    ("family", "prop", "key"),
    [
        (Family.ULXD, "BATT_RUN_TIME", "battery_runtime_seconds"),
        (Family.QLXD, "BATT_CYCLE", "battery_cycles"),
        (Family.SLXD, "TX_BATT_MINS", "battery_runtime_seconds"),
        (Family.AXTD, "TX_BATT_MINS", "battery_runtime_seconds"),
        (Family.AXTD, "TX_BATT_CYCLE_COUNT", "battery_cycles"),
    ],
)
def test_five_digit_sentinels(family: Family, prop: str, key: str, raw: str) -> None:
    fields = decode(family, parse_frame(f"REP 1 {prop} {raw}")).channel_fields
    assert key in fields
    assert fields[key] is None  # type: ignore[literal-required]


@pytest.mark.parametrize(
    ("family", "line", "key"),
    [
        (Family.ULXD, "REP 1 TX_TYPE UNKN", "tx_model"),
        (Family.ULXD, "REP 1 BATT_TYPE UNKN", "battery_type"),
        (Family.ULXD, "REP 1 TX_PWR_LOCK UNKN", "power_locked"),
        (Family.ULXD, "REP 1 TX_MUTE_STATUS UNKN", "muted"),
        (Family.SLXD, "REP 1 TX_MODEL UNKNOWN", "tx_model"),
        (Family.AXTD, "REP 1 TX_MODEL UNKNOWN", "tx_model"),
        (Family.AXTD, "REP 1 TX_LOCK UNKNOWN", "power_locked"),
        (Family.AXTD, "REP 1 TX_MUTE_MODE_STATUS UNKNOWN", "muted"),
        (Family.UHFR, "REPORT 1 TX_BAT U", "battery_bars"),
    ],
)
def test_text_sentinels(family: Family, line: str, key: str) -> None:
    fields = decode(family, parse_frame(line)).channel_fields
    assert key in fields
    assert fields[key] is None  # type: ignore[literal-required]


def test_values_next_to_the_sentinels_are_real() -> None:
    assert decode(Family.ULXD, parse_frame("REP 1 BATT_RUN_TIME 65531")).channel_fields == {
        "battery_runtime_seconds": 65531 * 60.0
    }
    assert decode(Family.ULXD, parse_frame("REP 1 BATT_TEMP_C 064")).channel_fields == {
        "battery_temperature_celsius": 24.0
    }
    assert decode(Family.ULXD, parse_frame("REP 1 BATT_BARS 000")).channel_fields == {"battery_bars": 0}


def test_axient_overload_bit_and_zero_quality_is_a_lost_link() -> None:
    fields = decode(Family.AXTD, parse_frame("SAMPLE 2 ALL 000 159 120 110 XX 00 010 00 011")).channel_fields
    assert fields["clip"] is True
    assert fields["link_up"] is False
    assert fields["link_quality_ratio"] == 0.0
    assert fields["audio_peak_dbfs"] == 0.0


# ---- encoding -------------------------------------------------------------------------------------


def test_encode_matches_the_reference_command_shapes() -> None:
    assert encode(Family.ULXD, "GET", "ALL", 0) == b"< GET 0 ALL >"
    assert encode(Family.AXTD, "GET", "DEVICE_ID") == b"< GET DEVICE_ID >"
    assert encode(Family.P10T, "GET", "CHAN_NAME", 1) == b"< GET 1 CHAN_NAME >\r\n"
    assert encode(Family.UHFR, "GET", "CHAN_NAME", 1) == b"* GET 1 CHAN_NAME *"


@pytest.mark.parametrize(
    ("family", "channel", "rate", "expected"),
    [
        (Family.ULXD, 1, 100, b"< SET 1 METER_RATE 00100 >"),
        (Family.SLXD, 1, 1000, b"< SET 1 METER_RATE 01000 >"),
        (Family.ULXD, 0, 0, b"< SET 0 METER_RATE 00000 >"),
        (Family.ULXD, 0, 20, b"< SET 0 METER_RATE 00100 >"),  # below the documented minimum
        (Family.AXTD, 0, 120_000, b"< SET 0 METER_RATE 65535 >"),  # AD/SLX-D top is 65535
        (Family.QLXD, 1, 120_000, b"< SET 1 METER_RATE 99999 >"),
        (Family.UHFR, 1, 100, b"* METER 1 ALL 003 *"),  # 30 ms units, MB: 0.1 s → 003
        (Family.UHFR, 2, 0, b"* METER 2 ALL STOP *"),
    ],
)
def test_meter_rate_commands(family: Family, channel: int, rate: int, expected: bytes) -> None:
    assert meter_rate_command(family, channel, rate) == expected


@pytest.mark.parametrize(
    ("model", "family", "channels"),
    [
        ("ULXD4Q", Family.ULXD, 4),
        ("ULXD4D", Family.ULXD, 2),
        ("ULXD4", Family.ULXD, 1),
        ("QLXD4", Family.QLXD, 1),
        ("SLXD4D+", Family.SLXD, 2),
        ("SLXD4Q+", Family.SLXD, 4),
        ("AD4Q-A", Family.AXTD, 4),
        ("AD4D", Family.AXTD, 2),
        ("UR4S", Family.UHFR, 1),
        ("P10T", Family.P10T, 2),
    ],
)
def test_model_info(model: str, family: Family, channels: int) -> None:
    info = model_info(model)
    assert info is not None
    assert (info.family, info.channels) == (family, channels)
    assert model_info("MXA910") is None
