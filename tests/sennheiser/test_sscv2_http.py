"""SSCv2 HTTP edge cases with respx: status codes, slow and huge bodies, malformed JSON, reference vectors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx
from sennheiser_helpers import MOCKED_BASE as BASE
from sennheiser_helpers import PASSWORD
from sennheiser_helpers import mocked_sscv2_device as cfg

from micboard_exporter.errors import AuthError, DeviceTimeout, DeviceUnreachable, PollError, ProtocolError
from micboard_exporter.plugins.sennheiser.sscv2 import SSCv2Plugin

pytestmark = pytest.mark.anyio


# sennheiser-protocols.md §1.8, verbatim bodies (EW-DX EM 2: channels 0 and 1; TX 1 not linked).
VECTORS: dict[str, tuple[int, Any]] = {
    "/api/ssc/version": (200, {"protocol": "2.3", "schema": "1.0"}),
    "/api/device/identity": (200, {"product": "EWDX2CHS", "hardwareRevision": "0596715-06",
                                   "serial": "1023456789", "vendor": "Sennheiser electronic SE & Co. KG"}),
    "/api/firmware/update/state": (200, {"deviceVersion": "3.0.3", "danteVersion": "", "state": "Idle",
                                         "progress": 0, "lastStatus": "None"}),
    "/api/channel/0": (200, {"name": "VOX 1", "mute": False, "mates": ["TX1"], "gain": 24, "audio": ["Out1"],
                             "outputLevel": 0, "eventCounter": 3}),
    "/api/rf/channels/0": (200, {"frequency": 548800, "presets": {"type": "None"}}),
    "/api/channel/0/warnings": (200, []),
    "/api/channel/0/signalStrengthIndicator": (200, {"value": -62.5}),
    "/api/channel/0/signalQualityIndicator": (200, {"value": 100}),
    "/api/channel/0/diversityIndicator": (200, {"value": 1}),
    "/api/channel/0/level": (200, {"value": -38.2}),
    "/api/transmitters/0": (200, {"type": "EW_DX_SKM", "capsule": "MMD_935", "name": "VOX 1", "trim": 0,
                                  "lowcut": "80Hz", "led": True, "version": "3.0.3", "lock": True,
                                  "mute": False, "identification": False}),
    "/api/transmitters/0/battery": (200, {"type": "Battery", "lifetime": 312, "gauge": 80}),
    "/api/transmitters/0/warnings": (200, []),
    "/api/channel/1": (200, {"name": "VOX 2", "mute": True, "mates": [], "gain": 24, "audio": ["Out2"],
                             "outputLevel": 0, "eventCounter": 0}),
    "/api/rf/channels/1": (200, {"frequency": 550000, "presets": {"type": "User", "bank": 1, "channel": 2}}),
    "/api/channel/1/warnings": (200, ["NoLink"]),
    "/api/channel/1/signalStrengthIndicator": (200, {"value": -107}),
    "/api/channel/1/signalQualityIndicator": (200, {"value": 0}),
    "/api/channel/1/diversityIndicator": (200, {"value": 0}),
    "/api/channel/1/level": (200, {"value": -138.5}),
    "/api/transmitters/1": (422, None),
    "/api/transmitters/1/battery": (422, None),
    "/api/transmitters/1/warnings": (422, None),
    "/api/channel/7": (404, None),
}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        for path, (status, body) in VECTORS.items():
            mock.get(path).mock(return_value=httpx.Response(status, json=body) if body is not None
                                else httpx.Response(status))
        yield mock


async def poll(**options: Any) -> Any:
    plugin = SSCv2Plugin()
    try:
        return await plugin.poll(cfg(**options))
    finally:
        await plugin.aclose()


async def test_reference_vectors_map_to_the_snapshot(router: respx.MockRouter) -> None:
    snap = await poll()
    assert (snap.model, snap.serial, snap.firmware) == ("EWDX2CHS", "1023456789", "3.0.3")
    one, two = snap.channels
    assert (one.number, one.name, one.frequency_hertz) == (1, "VOX 1", 548_800_000.0)
    assert dict(one.rf_dbm) == {"combined": -62.5}
    assert one.link_quality_ratio == 1.0
    assert dict(one.antenna_active) == {"a": True, "b": False}
    assert one.audio_level_dbfs == -38.2
    assert one.encryption_error is False
    tx = one.transmitter
    assert tx is not None
    assert (tx.model, tx.battery_charge_ratio, tx.battery_runtime_seconds, tx.battery_type, tx.muted) == (
        "EW_DX_SKM", 0.8, 312 * 60.0, "LION", False)
    # 422 = no transmitter linked: absent, not a 0 % battery.
    assert two.transmitter is None
    assert two.transmitter_known is True
    assert dict(two.antenna_active) == {"a": False, "b": False}
    # Basic auth as the fixed third-party user "api".
    request = router.calls.last.request
    assert request.headers["authorization"] == httpx.BasicAuth("api", PASSWORD)._auth_header


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_auth_errors(router: respx.MockRouter, status: int) -> None:
    router.get("/api/channel/0/level").mock(return_value=httpx.Response(status))
    with pytest.raises(AuthError, match=f"HTTP {status}.*Control Cockpit") as info:
        await poll()
    assert not info.value.transient
    assert PASSWORD not in str(info.value)


async def test_500_is_transient(router: respx.MockRouter) -> None:
    router.get("/api/channel/0").mock(return_value=httpx.Response(500))
    with pytest.raises(DeviceUnreachable, match="HTTP 500") as info:
        await poll()
    assert info.value.transient


async def test_unexpected_404_is_a_protocol_error(router: respx.MockRouter) -> None:
    router.get("/api/rf/channels/1").mock(return_value=httpx.Response(404))
    with pytest.raises(ProtocolError, match="404"):
        await poll()


async def test_unknown_product_probes_channels_until_404(router: respx.MockRouter) -> None:
    router.get("/api/device/identity").mock(return_value=httpx.Response(200, json={"product": "EWDXNEW"}))
    router.get("/api/mts/paired/all").mock(return_value=httpx.Response(404))
    router.get("/api/channel/2").mock(return_value=httpx.Response(404))
    snap = await poll()
    assert [c.number for c in snap.channels] == [1, 2]


async def test_malformed_json_is_a_protocol_error(router: respx.MockRouter) -> None:
    router.get("/api/channel/0/level").mock(return_value=httpx.Response(200, content=b'{"value": -3'))
    with pytest.raises(ProtocolError, match="malformed JSON"):
        await poll()


async def test_identity_of_the_wrong_shape_is_a_protocol_error(router: respx.MockRouter) -> None:
    router.get("/api/device/identity").mock(return_value=httpx.Response(200, json=["not", "an", "object"]))
    with pytest.raises(ProtocolError, match="identity"):
        await poll()


async def test_huge_body_is_capped(router: respx.MockRouter) -> None:
    big = json.dumps({"name": "X" * 300_000}).encode()
    router.get("/api/channel/0").mock(return_value=httpx.Response(200, content=big))
    with pytest.raises(ProtocolError, match="exceeds 262144"):
        await poll()


class _Endless(httpx.AsyncByteStream):
    """A body without Content-Length that never ends, quickly."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            yield b" " * 8192

    async def aclose(self) -> None:
        return None


class _Slow(httpx.AsyncByteStream):
    """A body that drips one byte per 100 ms (each read is quick, the whole is not)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for byte in b'{"value": -3.0}':
            await anyio.sleep(0.1)
            yield bytes([byte])

    async def aclose(self) -> None:
        return None


async def test_unbounded_streamed_body_is_capped(router: respx.MockRouter) -> None:
    router.get("/api/channel/0").mock(return_value=httpx.Response(200, stream=_Endless()))
    with pytest.raises(ProtocolError, match="exceeds"):
        await poll(max_body_bytes=65536)


async def test_slow_body_hits_the_request_deadline(router: respx.MockRouter) -> None:
    router.get("/api/channel/0/level").mock(return_value=httpx.Response(200, stream=_Slow()))
    with anyio.fail_after(5), pytest.raises(DeviceTimeout, match="no answer within 0.5 s"):
        await poll(timeout=0.5)


async def test_connect_failure_is_unreachable(router: respx.MockRouter) -> None:
    router.get("/api/device/identity").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(DeviceUnreachable, match="identity: ConnectError"):
        await poll()


async def test_transport_timeout_is_a_device_timeout(router: respx.MockRouter) -> None:
    router.get("/api/device/identity").mock(side_effect=httpx.ConnectTimeout("timed out"))
    with pytest.raises(DeviceTimeout):
        await poll()


async def test_no_battery_and_primary_cells_are_reported_honestly(router: respx.MockRouter) -> None:
    router.get("/api/transmitters/0/battery").mock(
        return_value=httpx.Response(200, json={"type": "PrimaryCell", "lifetime": 95, "gauge": 40}))
    snap = await poll()
    tx = snap.channels[0].transmitter
    assert tx is not None
    assert tx.battery_type == "PRIMARY"
    assert tx.battery_charge_ratio == 0.4
    assert tx.battery_runtime_seconds is None  # lifetime is shown for the BA 70 pack only
    router.get("/api/transmitters/0/battery").mock(
        return_value=httpx.Response(200, json={"type": "NoBattery", "lifetime": 0, "gauge": 0}))
    snap = await poll()
    tx = snap.channels[0].transmitter
    assert tx is not None
    assert (tx.battery_type, tx.battery_charge_ratio, tx.battery_runtime_seconds) == (None, None, None)


async def test_aes_warning_sets_encryption_error(router: respx.MockRouter) -> None:
    router.get("/api/channel/0/warnings").mock(return_value=httpx.Response(200, json=["Aes256Error"]))
    snap = await poll()
    assert snap.channels[0].encryption_error is True


async def test_every_error_is_a_poll_error_subclass(router: respx.MockRouter) -> None:
    router.get("/api/channel/0").mock(return_value=httpx.Response(418))
    with pytest.raises(PollError, match="unexpected HTTP 418"):
        await poll()
