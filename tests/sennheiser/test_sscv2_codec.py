"""SSCv2 codec: Server-Sent Events framing per the WHATWG standard, subscription handshake, conversions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micboard_exporter.plugins.sennheiser.sscv2 import codec
from micboard_exporter.plugins.sennheiser.sscv2.codec import ABSENT, SSEEvent, SSEParser

UUID = "31875a94-29e6-4fb0-ab4d-7f0bbd6e1bc8"
# §1.8: the open event exactly as in Sennheiser's OpenAPI example (no space after the colon).
OPEN = (f'event:open\ndata:{{"path":"/api/ssc/state/subscriptions/{UUID}","sessionUUID":"{UUID}"}}\n\n')
NOTIFY = 'data:{"/api/channel/0/signalQualityIndicator":{"value":93}}\n\n'


def test_reference_stream_without_spaces() -> None:
    events = SSEParser().feed(OPEN + NOTIFY)
    assert [e.event for e in events] == ["open", "message"]
    assert codec.parse_open_event(events[0].data) == UUID
    assert codec.parse_notification(events[1].data) == {"/api/channel/0/signalQualityIndicator": {"value": 93}}


def test_data_with_a_space_is_the_same_event() -> None:
    spaced = SSEParser().feed(OPEN.replace(":", ": ", 2).replace("event: open", "event: open") + NOTIFY)
    plain = SSEParser().feed(OPEN + NOTIFY)
    assert spaced == plain


def test_only_one_leading_space_is_removed() -> None:
    assert SSEParser().feed("data:  x\n\n") == [SSEEvent("message", " x")]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_all_three_line_endings(newline: str) -> None:
    text = (OPEN + NOTIFY).replace("\n", newline)
    assert [e.event for e in SSEParser().feed(text)] == ["open", "message"]


def test_comments_ids_retry_and_multi_line_data() -> None:
    parser = SSEParser()
    events = parser.feed(": heartbeat\nid: 7\nretry: 2500\ndata:{\ndata:\"a\":1}\n\n")
    assert events == [SSEEvent("message", '{\n"a":1}', "7")]
    assert parser.retry_ms == 2500
    assert codec.decode_json(events[0].data) == {"a": 1}


def test_event_without_data_is_not_dispatched_and_type_resets() -> None:
    parser = SSEParser()
    assert parser.feed("event:open\n\n") == []
    assert parser.feed("data:x\n\n") == [SSEEvent("message", "x")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed("data:a\r") == []
    assert parser.feed("\n\r\n") == [SSEEvent("message", "a")]


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    text = (OPEN + NOTIFY + ": c\r\n" + NOTIFY).replace("\n", "\r\n")
    whole = SSEParser().feed(text)
    parser, events, pos = SSEParser(), [], 0
    for cut in cuts:
        events += parser.feed(text[pos : pos + cut])
        pos += cut
    events += parser.feed(text[pos:])
    assert events == whole


def test_oversized_event_is_refused() -> None:
    with pytest.raises(codec.MalformedResponse):
        SSEParser(max_event=100).feed("data:" + "x" * 200 + "\n")


def test_paths_with_and_without_api_prefix_are_one_key() -> None:
    assert codec.parse_notification('{"/device/site":{"deviceName":"A"},"/api/channel/1/level":{"value":-9}}') == {
        "/api/device/site": {"deviceName": "A"}, "/api/channel/1/level": {"value": -9}}


def test_null_in_a_notification_means_removed() -> None:
    assert codec.parse_notification('{"/api/mts/paired/all/5E0001":null}') == {"/api/mts/paired/all/5E0001": ABSENT}


@pytest.mark.parametrize("value", [UUID, f"/api/ssc/state/subscriptions/{UUID}", f"{UUID}/"])
def test_content_location_is_a_uuid_or_a_path(value: str) -> None:
    assert codec.session_from_content_location(value) == UUID


def test_subscription_refusal_names_the_path() -> None:
    assert codec.parse_subscription_error(b'{"path":"/api/bogus","error":404}') == "/api/bogus"
    assert codec.parse_subscription_error(b"not json") is None


def test_open_event_without_session_is_malformed() -> None:
    with pytest.raises(codec.MalformedResponse):
        codec.parse_open_event('{"hello":1}')


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"value": 0}, {"a": False, "b": False}), ({"value": 1}, {"a": True, "b": False}),
     ({"value": 2}, {"a": False, "b": True}), ({"value": 7}, None), (ABSENT, None)],
)
def test_diversity_indicator(value: object, expected: object) -> None:
    assert codec.active_antenna(value) == expected


def test_frequency_is_khz_and_rsqi_is_percent() -> None:
    assert codec.frequency_hz({"frequency": 470200}) == 470_200_000.0
    assert codec.link_quality_ratio({"value": 87}) == 0.87
    assert codec.link_quality_ratio({"value": 0}) == 0.0  # no signal is a real 0, not unknown


def test_spectera_sentinels_become_unknown() -> None:
    mobile = codec.parse_mobile({"mtUid": "A1", "type": "Unknown", "serial": "0000000000", "state": "Sleeping",
                                 "batteryFillLevel": -1, "batteryRuntime": -1, "rssi": -80.5, "micLqi": 3,
                                 "dominantAntenna": "NotAvailable", "interference": {"severity": "None"}})
    assert mobile is not None
    assert (mobile.type, mobile.charge_ratio, mobile.runtime_seconds, mobile.dominant_antenna) == (
        None, None, None, None)
    assert (mobile.syncing, mobile.connected, mobile.link_quality_ratio, mobile.interference) == (
        True, False, 0.75, False)
    assert codec.antenna_label("B") == "b"
    assert codec.antenna_label("antenna c") == "c"
