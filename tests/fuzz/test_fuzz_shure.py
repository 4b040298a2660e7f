"""Properties of the Shure command-string codec: framing is independent of how the network splits the
stream, arbitrary bytes only ever raise the documented errors, and what we encode reads back the same."""

from __future__ import annotations

import contextlib

from fuzz_helpers import cut_points, fuzz, split_at
from hypothesis import assume, given
from hypothesis import strategies as st

from micboard_exporter.plugins.shure.codec import (
    DecodeError,
    Family,
    FrameReader,
    FramingError,
    decode,
    encode,
    parse_frame,
    split_datagram,
)

#: A small frame limit, so the examples reach it often.
LIMIT = 96

_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_WORD = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="<>{}*"),
                min_size=1, max_size=8)
_BRACED = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="{}"),
                  max_size=20).map(lambda s: "{" + s + "}")
_GAP = st.text(st.sampled_from(" \t\r\n"), max_size=3)


@st.composite
def frame_texts(draw: st.DrawFn) -> str:
    """The inside of one frame as devices send it: words and ``{...}`` strings (which may hold ``>``)."""
    tokens = draw(st.lists(st.one_of(_WORD, _BRACED), min_size=1, max_size=6))
    return " " + " ".join(tokens) + " "


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """Frames no longer than :data:`LIMIT` with whitespace between them, and the frames expected."""
    frames = draw(st.lists(frame_texts().filter(lambda t: len(t) + 2 <= LIMIT), max_size=8))
    stream = "".join(draw(_GAP) + "<" + f + ">" for f in frames) + draw(_GAP)
    return stream.encode("ascii"), frames


def read_all(pieces: list[bytes]) -> list[str]:
    reader = FrameReader(max_frame_bytes=LIMIT)
    frames: list[str] = []
    for piece in pieces:
        frames += reader.feed(piece)
    return frames


@fuzz(300)
@given(st.data())
def test_any_split_of_a_valid_stream_gives_the_same_frames(data: st.DataObject) -> None:
    stream, expected = data.draw(valid_streams())
    cuts = data.draw(cut_points(len(stream)))
    assert read_all(split_at(stream, cuts)) == expected
    assert read_all([stream]) == expected


def outcome(pieces: list[bytes]) -> list[str] | None:
    """The frames of a stream fed in ``pieces``, or ``None`` when the reader refused it."""
    try:
        return read_all(pieces)
    except FramingError:
        return None


@fuzz(400)
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.one_of(frame_texts(), st.text(_PRINTABLE, min_size=LIMIT - 4, max_size=LIMIT + 4)),
                          max_size=4).map(lambda fs: "".join("<" + f + ">\r\n" for f in fs).encode("ascii"))),
       st.data())
def test_arbitrary_bytes_read_the_same_however_they_are_split(stream: bytes, data: st.DataObject) -> None:
    """Whatever arrives, the reader returns frames or raises :class:`FramingError`, and the outcome (frames,
    or refusal: garbage, a frame over the limit) does not depend on where the stream was split."""
    cuts = data.draw(cut_points(len(stream)))
    assert outcome(split_at(stream, cuts)) == outcome([stream])


@fuzz(200)
@given(st.binary(max_size=200).map(lambda b: b"<" + b))
def test_a_reader_never_holds_more_than_its_limit(stream: bytes) -> None:
    reader = FrameReader(max_frame_bytes=LIMIT)
    for i in range(len(stream)):
        try:
            reader.feed(stream[i : i + 1])
        except FramingError:
            return
        assert reader.pending <= LIMIT


@fuzz(300)
@given(st.binary(max_size=200))
def test_uhfr_datagrams_raise_only_framing_errors(datagram: bytes) -> None:
    try:
        frames = split_datagram(datagram)
    except FramingError:
        return
    assert all(f.isascii() and f.isprintable() for f in frames)


@fuzz(400)
@given(st.sampled_from(list(Family)), st.text(_PRINTABLE, max_size=80))
def test_any_frame_text_parses_or_raises_only_the_documented_errors(family: Family, text: str) -> None:
    """What the reader can hand on (printable ASCII) becomes a frame and then fields, or a typed error."""
    try:
        frame = parse_frame(text)
    except FramingError:
        return
    assert frame.verb == frame.verb.upper() and frame.prop == frame.prop.upper()
    try:
        decoded = decode(family, frame)
    except DecodeError:
        return
    assert decoded.channel is None or decoded.channel >= 1


_VERBS = st.sampled_from(["REP", "REPORT", "SAMPLE", "GET", "SET"])
_PROPS = st.sampled_from(["CHAN_NAME", "BATT_BARS", "BATT_RUN_TIME", "RX_RF_LVL", "AUDIO_LVL", "FREQUENCY",
                          "RSSI", "ALL", "TX_TYPE", "MODEL", "FW_VER", "RF_MUTE", "ANTENNA_STATUS",
                          "AUDIO_LED_BITMAP", "TX_MUTE_STATUS", "QUALITY", "TX_BATT_TEMP_C", "DEVICE_ID"])
_ARGS = st.lists(st.one_of(st.integers(min_value=0, max_value=99999).map(str),
                           st.sampled_from(["ON", "OFF", "UNKN", "UNKNOWN", "AX", "XB", "AB", "XX", "BR", "RR",
                                            "255", "65535", "-1", "", "A", "B"]),
                           _WORD),
                 max_size=12)


@fuzz(500)
@given(st.sampled_from(list(Family)), _VERBS, st.one_of(st.none(), st.integers(0, 9)), _PROPS, _ARGS)
def test_realistic_frames_decode_or_raise_only_decode_errors(
    family: Family, verb: str, channel: int | None, prop: str, args: list[str]
) -> None:
    """Known properties with plausible and implausible values: fields, or :class:`DecodeError`."""
    text = " ".join([verb, *([str(channel)] if channel is not None else []), prop, *args])
    frame = parse_frame(text)
    with contextlib.suppress(DecodeError):
        decode(family, frame)


@fuzz(300)
@given(st.sampled_from(list(Family)), _VERBS, st.one_of(st.none(), st.integers(0, 9)), _PROPS,
       st.lists(_WORD, max_size=4))
def test_what_we_encode_reads_back_as_the_same_frame(
    family: Family, verb: str, channel: int | None, prop: str, args: list[str]
) -> None:
    assume(not (args and args[0].isdigit() and channel is None))  # it would read as the channel
    wire = encode(family, verb, prop, channel, *args)
    texts = split_datagram(wire) if family.udp else FrameReader().feed(wire)
    assert len(texts) == 1
    frame = parse_frame(texts[0])
    assert (frame.verb, frame.channel, frame.prop, frame.args) == (verb, channel, prop, tuple(args))
