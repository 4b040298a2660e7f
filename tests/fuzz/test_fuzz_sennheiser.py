"""Properties of the Sennheiser codecs: SSC v1 JSON datagrams, MCP lines and the SSCv2 event stream.

Arbitrary input raises only each codec's documented error (a ``ValueError`` subclass of its own), the SSE
parser gives the same events however the stream is split, and requests we build decode back to what we
asked for.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from fuzz_helpers import cut_points, fuzz, split_at
from hypothesis import given
from hypothesis import strategies as st

from micboard_exporter.plugins.sennheiser.mcp import codec as mcp
from micboard_exporter.plugins.sennheiser.ssc import codec as ssc
from micboard_exporter.plugins.sennheiser.sscv2 import codec as sscv2

_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
                       st.text(max_size=10))
JSON = st.recursive(_JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=20)

# ------------------------------------------------------------------------------------------------ SSC v1


@fuzz(400)
@given(st.one_of(st.binary(max_size=300), JSON.map(lambda v: json.dumps(v).encode("latin-1", "replace"))))
def test_ssc_datagrams_decode_or_raise_only_malformed_message(datagram: bytes) -> None:
    try:
        obj = ssc.decode(datagram)
    except ssc.MalformedMessage:
        return
    message = ssc.parse_message(obj)  # any object shape: values and errors, never an exception
    assert all(path.startswith("/") for path in message.paths)


_SEGMENT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/\"\\"),
                   min_size=1, max_size=8)


@pytest.mark.parametrize("datagram", [b"[" * 100_000, b'{"a":' * 50_000])
def test_ssc_json_nested_deeper_than_python_recurses_is_malformed_not_a_crash(datagram: bytes) -> None:
    with pytest.raises(ssc.MalformedMessage, match="nested too deeply"):
        ssc.decode(datagram)


@fuzz(300)
@given(st.lists(st.lists(_SEGMENT, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)), min_size=1,
                max_size=10, unique=True))
def test_ssc_get_requests_read_back_as_the_paths_asked_for(paths: list[str]) -> None:
    # A path that is a prefix of another ("/a" and "/a/b") cannot be both a leaf and a branch of one tree.
    leaves_only = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    message = ssc.parse_message(ssc.decode(ssc.get_request(leaves_only)))
    assert message.values == {p: None for p in leaves_only if not p.startswith("/osc/") and p != "/osc"}


@fuzz(200)
@given(st.lists(_SEGMENT.map(lambda s: "/" + s), min_size=1, max_size=30, unique=True),
       st.integers(min_value=200, max_value=1400))
def test_ssc_chunks_keep_every_path_once_and_in_order(paths: list[str], max_bytes: int) -> None:
    chunks = ssc.chunk_paths(paths, max_bytes)
    assert [p for chunk in chunks for p in chunk] == paths
    assert all(chunks)


# ------------------------------------------------------------------------------------------------ MCP

#: Which parser reads which keyword (as the plugin dispatches them).
_PARSERS: dict[str, Any] = {
    "Frequency": mcp.parse_frequency, "RF1": mcp.parse_antenna_rf, "RF2": mcp.parse_antenna_rf,
    "RF": mcp.parse_current_rf, "States": mcp.parse_states, "AF": mcp.parse_af, "Af": mcp.parse_af,
    "Bat": mcp.parse_bat, "Msg": mcp.parse_msg, "Config": mcp.parse_int, "Squelch": mcp.parse_int,
    "Mute": mcp.parse_mute, "Push": mcp.parse_push,
}
_KEYWORDS = [*_PARSERS, "Name", "1000:", "1010:", "rf1", "Bat?"]
_MCP_BYTES = st.binary(max_size=120)
_PARAM = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["?", "OK", "", "-0", "+7", "1_000", "0x10"]),
                   st.sampled_from(["\xb2", "\xb3", "\xb9", "\xbd"]),  # latin-1 "digits" int() refuses
                   st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=5))
_MCP_LINES = st.lists(st.tuples(st.sampled_from(_KEYWORDS), st.lists(_PARAM, max_size=5)), max_size=6).map(
    lambda lines: "\r".join(" ".join([k, *ps]) for k, ps in lines).encode("latin-1"))


@fuzz(500)
@given(st.one_of(_MCP_BYTES, _MCP_LINES))
def test_mcp_lines_parse_or_raise_only_malformed_line(datagram: bytes) -> None:
    for text in mcp.split_lines(datagram):
        assert text and text == text.strip() and "\r" not in text and "\n" not in text
        line = mcp.parse_line(text)
        if isinstance(line, mcp.ErrorReply):
            continue
        parse = _PARSERS.get(line.keyword)
        if parse is not None:
            with contextlib.suppress(mcp.MalformedLine):
                parse(line)


# ------------------------------------------------------------------------------------------------ SSE

_FIELD_NAMES = st.sampled_from(["data", "event", "id", "retry", "", "dat", "data "])
_VALUE = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=30)
_EOL = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def event_streams(draw: st.DrawFn) -> str:
    """Event-stream text: fields (with or without the optional space), comments, blank lines, any EOL."""
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["field", "field", "field", "comment", "blank", "bare"]))
        if kind == "field":
            line = draw(_FIELD_NAMES) + ":" + draw(st.sampled_from(["", " "])) + draw(_VALUE)
        elif kind == "comment":
            line = ":" + draw(_VALUE)
        elif kind == "bare":
            line = draw(_FIELD_NAMES)
        else:
            line = ""
        lines.append(line + draw(_EOL))
    return "".join(lines)


def parse_events(pieces: list[str], max_event: int) -> tuple[list[sscv2.SSEEvent], str | None, int | None] | None:
    """Events, last id and retry after feeding ``pieces``; ``None`` if the parser refused the stream."""
    parser = sscv2.SSEParser(max_event=max_event)
    events: list[sscv2.SSEEvent] = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
    except sscv2.MalformedResponse:
        return None
    return events, parser.last_event_id, parser.retry_ms


@fuzz(500)
@given(st.one_of(event_streams(), st.text(max_size=200)), st.integers(min_value=8, max_value=64), st.data())
def test_any_split_of_an_event_stream_gives_the_same_events(text: str, max_event: int, data: st.DataObject) -> None:
    """Including a CR at the end of one piece and its LF at the start of the next, and lines or events over
    the size limit: those are refused whichever way the stream was split."""
    cuts = data.draw(cut_points(len(text)))
    assert parse_events(split_at(text, cuts), max_event) == parse_events([text], max_event)


@fuzz(300)
@given(st.lists(st.tuples(st.sampled_from(["open", "message", "close", ""]), JSON), max_size=5), _EOL, st.data())
def test_events_we_would_accept_survive_any_split(events: list[tuple[str, Any]], eol: str,
                                                  data: st.DataObject) -> None:
    """Sennheiser's ``data:{…}`` form (no space) with multi-line JSON: every event arrives whole."""
    text = ""
    for name, value in events:
        body = json.dumps(value, indent=1)
        text += (f"event:{name}{eol}" if name else "") + "".join(f"data:{ln}{eol}" for ln in body.split("\n")) + eol
    cuts = data.draw(cut_points(len(text)))
    parsed = parse_events(split_at(text, cuts), max_event=1 << 20)
    assert parsed is not None
    got = [(e.event, json.loads(e.data)) for e in parsed[0]]
    assert got == [(name or "message", value) for name, value in events]


@fuzz(300)
@given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode())))
def test_sscv2_bodies_decode_or_raise_only_malformed_response(body: bytes) -> None:
    try:
        value = sscv2.decode_json(body)
    except sscv2.MalformedResponse:
        return
    for parse in (sscv2.parse_identity, sscv2.parse_mobile_list):
        with contextlib.suppress(sscv2.MalformedResponse):
            parse(value)
    for lenient in (sscv2.parse_firmware, sscv2.parse_meter, sscv2.parse_warnings, sscv2.frequency_hz,
                    sscv2.link_quality_ratio, sscv2.active_antenna, sscv2.parse_battery, sscv2.parse_transmitter,
                    sscv2.parse_channel_name, sscv2.parse_mobile, sscv2.spectera_frequencies):
        lenient(value)  # shapes they do not know are "unknown", never an exception


@fuzz(200)
@given(st.text(max_size=200))
def test_sscv2_event_payloads_parse_or_raise_only_malformed_response(data: str) -> None:
    for parse in (sscv2.parse_open_event, sscv2.parse_notification):
        with contextlib.suppress(sscv2.MalformedResponse):
            parse(data)


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000])
def test_sscv2_json_nested_deeper_than_python_recurses_is_malformed_not_a_crash(body: bytes) -> None:
    with pytest.raises(sscv2.MalformedResponse, match="nested too deeply"):
        sscv2.decode_json(body)


@fuzz(300)
@given(st.text(max_size=60), st.floats(min_value=0, max_value=4e9))
def test_retry_after_is_a_number_or_none(header: str, now: float) -> None:
    seconds = sscv2.parse_retry_after(header, now)
    assert seconds is None or seconds == seconds  # never NaN
