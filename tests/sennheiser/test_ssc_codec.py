"""SSC v1 codec: every test vector of sennheiser-protocols.md §2.9, error shapes and framing tolerance."""

from __future__ import annotations

import json

import pytest

from micboard_exporter.plugins.sennheiser.ssc import codec
from micboard_exporter.plugins.sennheiser.ssc.codec import SscError


def test_identity_get_and_answer() -> None:
    request = codec.get_request(["/device/identity/product", "/device/identity/serial",
                                 "/device/identity/version", "/device/name"])
    assert json.loads(request) == {"device": {"identity": {"product": None, "serial": None, "version": None},
                                              "name": None}}
    answer = codec.parse_message(codec.decode(
        b'{"device":{"identity":{"product":"<model>","serial":"1023456789","version":"3.0.3"},"name":"EWDXEM2"}}'))
    assert answer.values == {"/device/identity/product": "<model>", "/device/identity/serial": "1023456789",
                             "/device/identity/version": "3.0.3", "/device/name": "EWDXEM2"}
    assert answer.errors == {}


def test_receiver_get_and_answer() -> None:
    request = codec.get_request(["/rx1/name", "/rx1/frequency", "/rx1/mute", "/rx1/gain", "/rx1/warnings"])
    assert request == b'{"rx1":{"name":null,"frequency":null,"mute":null,"gain":null,"warnings":null}}'
    answer = codec.parse_message(codec.decode(
        b'{"rx1":{"name":"VOX 1","frequency":546400,"mute":false,"gain":36,"warnings":[]}}'))
    assert answer.values["/rx1/frequency"] == 546400
    assert codec.frequency_hz(answer.values["/rx1/frequency"]) == 546_400_000.0
    assert codec.warnings(answer.values["/rx1/warnings"]) == frozenset()


def test_battery_gauge() -> None:
    assert codec.get_request(["/mates/tx1/battery/gauge"]) == b'{"mates":{"tx1":{"battery":{"gauge":null}}}}'
    answer = codec.parse_message(codec.decode(b'{"mates":{"tx1":{"battery":{"gauge":65}}}}'))
    assert answer.values == {"/mates/tx1/battery/gauge": 65}


def test_424_for_an_absent_transmitter() -> None:
    wire = b'{"osc":{"error":[{"mates":{"tx2":{"battery":{"gauge":[424,{"desc":"failed dependency"}]}}}}]}}'
    answer = codec.parse_message(codec.decode(wire))
    assert answer.values == {}
    assert answer.errors == {"/mates/tx2/battery/gauge": SscError(424, "failed dependency")}
    assert answer.paths == {"/mates/tx2/battery/gauge"}


def test_subscribe_request_ack_notification_and_expiry() -> None:
    request = codec.subscribe_request(["/m/rx1/rssi", "/m/rx1/rsqi", "/m/rx1/divi", "/m/rx1/af"], lifetime=60)
    expected = (b'{"osc":{"state":{"subscribe":[{"#":{"min":0,"max":0,"count":1000,"lifetime":60},'
                b'"m":{"rx1":{"rssi":null,"rsqi":null,"divi":null,"af":null}}}]}}}')
    assert request == expected
    ack = codec.parse_message(codec.decode(expected))
    assert ack.subscribe_ack
    assert ack.values == {}  # the echo carries no values
    note = codec.parse_message(codec.decode(b'{"m":{"rx1":{"rssi":-61.5,"rsqi":100,"divi":1,"af":-42.0}}}'))
    assert note.values == {"/m/rx1/rssi": -61.5, "/m/rx1/rsqi": 100, "/m/rx1/divi": 1, "/m/rx1/af": -42.0}
    assert codec.diversity(note.values["/m/rx1/divi"]) == {"a": True, "b": False}
    end = codec.parse_message(codec.decode(
        b'{"osc":{"error":[{"m":{"rx1":{"rssi":[310,{"desc":"subscription terminates"}]}}}]}}'))
    assert end.errors == {"/m/rx1/rssi": SscError(310, "subscription terminates")}


def test_cancel_keeps_hash_first() -> None:
    request = json.loads(codec.subscribe_request(["/m/rx1/af"], lifetime=60, cancel=True))
    element = request["osc"]["state"]["subscribe"][0]
    assert next(iter(element)) == "#"
    assert element["#"] == {"cancel": True}


@pytest.mark.parametrize(
    ("wire", "path_errors", "whole"),
    [
        (b'{"osc":{"error":[{"bogus":[404,{"desc":"address not found"}]}]}}',
         {"/bogus": SscError(404, "address not found")}, None),
        (b'{"osc":{"error":[400,{"desc":"message not understood"}]}}', {}, SscError(400, "message not understood")),
        (b'{"osc":{"error":[{"bays":{"identify":[423]}}]}}', {"/bays/identify": SscError(423)}, None),
        (b'{"osc":{"error":[{"m":{"rx1":{"rssi":[310]}}}]}}', {"/m/rx1/rssi": SscError(310)}, None),
    ],
)
def test_error_shapes(wire: bytes, path_errors: dict[str, SscError], whole: SscError | None) -> None:
    message = codec.parse_message(codec.decode(wire))
    assert message.errors == path_errors
    assert message.message_error == whole


def test_bogus_request_vector() -> None:
    assert codec.get_request(["/bogus"]) == b'{"bogus":null}'


@pytest.mark.parametrize("tail", [b"", b"\r\n", b"\r", b"\n", b"\0", b"\r\n\0", b"  \r\n"])
def test_trailing_terminators_are_tolerated(tail: bytes) -> None:
    assert codec.decode(b'{"rx1":{"mute":true}}' + tail) == {"rx1": {"mute": True}}


def test_duplicate_osc_keys_from_the_speechline_guide_are_merged() -> None:
    message = codec.decode(b'{"osc":{"xid":7},"osc":{"state":{"subscribe":[]}},"rx1":{"name":"A"}}')
    assert message["osc"] == {"xid": 7, "state": {"subscribe": []}}
    assert codec.parse_message(message).subscribe_ack


@pytest.mark.parametrize("wire", [b"", b"\0", b"[1,2]", b'{"rx1":', b"\xff\xfe garbage"])
def test_malformed_datagrams(wire: bytes) -> None:
    with pytest.raises(codec.MalformedMessage):
        codec.decode(wire)


def test_requests_are_split_to_fit_a_datagram() -> None:
    paths = [p for n in range(1, 5) for p in codec.receiver_paths(n) + codec.transmitter_paths(n)]
    chunks = codec.chunk_paths(paths, max_bytes=400)
    assert [p for c in chunks for p in c] == paths
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(codec.get_request(chunk)) + 48 * len(chunk) <= 400 or len(chunk) == 1
    assert codec.chunk_paths(paths, max_bytes=65000) == [paths]


def test_runtime_is_minutes_and_only_for_the_rechargeable_pack() -> None:
    assert codec.battery_runtime_s("Battery", 312) == 312 * 60.0
    assert codec.battery_runtime_s("Primary Cell", 312) is None
    assert codec.battery_runtime_s("Battery", None) is None
