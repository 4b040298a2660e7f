"""The example plugin of docs/plugins.md does what the guide says: maps answers, sentinels and errors."""

from __future__ import annotations

import dataclasses
import importlib
import socket
import sys
from collections.abc import Iterator
from types import MappingProxyType, ModuleType

import pytest
from packaging_helpers import EXAMPLE_DIR, JsonDevice, serve_device

from micboard_exporter.config import parse_config
from micboard_exporter.config_types import DeviceConfig, Secret
from micboard_exporter.errors import AuthError, ConfigErrors, DeviceUnreachable, ProtocolError
from micboard_exporter.plugin import Plugin
from micboard_exporter.plugins.synthetic import SyntheticPlugin
from micboard_exporter.registry import PluginRegistry

pytestmark = pytest.mark.anyio


@pytest.fixture
def json_device() -> Iterator[JsonDevice]:
    """A running example device on loopback (see :mod:`packaging_helpers`)."""
    with serve_device() as device:
        yield device


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """The example plugin imported from its source directory (it is not installed in the dev venv)."""
    sys.path.insert(0, str(EXAMPLE_DIR))
    try:
        return importlib.import_module("micboard_example_http")
    finally:
        sys.path.remove(str(EXAMPLE_DIR))


def _plugin(example: ModuleType) -> Plugin:
    plugin: Plugin = example.ExampleHttpPlugin()
    return plugin


def _device(dev: JsonDevice, **options: object) -> DeviceConfig:
    return DeviceConfig(id="rx", plugin="example-http", host=dev.host, port=dev.port,
                        options=MappingProxyType(dict(options)))


async def test_poll_maps_the_status_document(example: ModuleType, json_device: JsonDevice) -> None:
    plugin = _plugin(example)
    try:
        snap = await plugin.poll(_device(json_device))
    finally:
        await plugin.aclose()
    assert (snap.device_id, snap.manufacturer, snap.model, snap.firmware, snap.serial) == (
        "rx", "Example", "EX2", "1.2.0", "EX0001")
    vox1, vox2, guitar = snap.channels
    assert [c.number for c in snap.channels] == [1, 2, 3]
    assert vox1.name == "Vox 1"
    assert vox1.frequency_hertz == 566_125_000
    assert dict(vox1.rf_dbm) == {"combined": -61.0}
    assert vox1.transmitter is not None
    assert vox1.transmitter.battery_charge_ratio == 0.8
    assert vox1.transmitter.muted is False
    assert vox2.transmitter is None  # switched off: no transmitter, no battery samples
    assert guitar.transmitter is not None
    assert guitar.transmitter.battery_charge_ratio is None  # 255 = unknown, never 0 % or 255 %
    assert guitar.transmitter.muted is True
    assert json_device.requests == [("/api/status", None)]


async def test_token_secret_is_sent_as_bearer(example: ModuleType, json_device: JsonDevice) -> None:
    json_device.token = "s3cret"
    plugin = _plugin(example)
    try:
        base = _device(json_device)
        with pytest.raises(AuthError, match="HTTP 401") as no_token:
            await plugin.poll(base)
        wrong = dataclasses.replace(base, secrets=MappingProxyType({"token": Secret("nope", "env:T")}))
        with pytest.raises(AuthError):
            await plugin.poll(wrong)
        right = dataclasses.replace(base, secrets=MappingProxyType({"token": Secret("s3cret", "env:T")}))
        assert len((await plugin.poll(right)).channels) == 3
    finally:
        await plugin.aclose()
    assert json_device.requests[-1] == ("/api/status", "Bearer s3cret")
    assert "s3cret" not in str(no_token.value)


@pytest.mark.parametrize(
    ("raw_body", "http_status", "match"),
    [
        (b"<html>upgrading firmware</html>", 200, "unusable answer: JSONDecodeError"),
        (b'{"model": "EX2"}', 200, "unusable answer: KeyError"),
        (b'{"channels": [{"name": "x"}]}', 200, "unusable answer: KeyError"),
        (b'{"channels": "none"}', 200, "unusable answer"),
        (b"{}", 500, "unusable answer: HTTPStatusError"),
    ],
)
async def test_unusable_answers_are_protocol_errors(
    example: ModuleType, json_device: JsonDevice, raw_body: bytes, http_status: int, match: str
) -> None:
    json_device.raw_body, json_device.http_status = raw_body, http_status
    plugin = _plugin(example)
    try:
        with pytest.raises(ProtocolError, match=match):
            await plugin.poll(_device(json_device))
    finally:
        await plugin.aclose()


async def test_wrong_path_is_a_protocol_error(example: ModuleType, json_device: JsonDevice) -> None:
    plugin = _plugin(example)
    try:
        with pytest.raises(ProtocolError, match="404"):
            await plugin.poll(_device(json_device, path="/status"))
    finally:
        await plugin.aclose()
    assert json_device.requests == [("/status", None)]


async def test_closed_port_is_unreachable(example: ModuleType) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    plugin = _plugin(example)
    try:
        with pytest.raises(DeviceUnreachable, match=f"127.0.0.1:{port}"):
            await plugin.poll(DeviceConfig(id="rx", plugin="example-http", host="127.0.0.1", port=port))
    finally:
        await plugin.aclose()


def test_options_schema_validates_the_config(example: ModuleType, tmp_path: object) -> None:
    registry = PluginRegistry.from_classes(SyntheticPlugin, example.ExampleHttpPlugin)
    text = (
        "devices:\n"
        "  - {id: rx, plugin: example-http, host: 127.0.0.1, options: {token_env: RX_TOKEN, path: /api/status}}\n"
    )
    config = parse_config("c.yaml", text, registry, environ={"RX_TOKEN": "s3cret"})
    token = config.devices[0].secret("token")
    assert token is not None
    assert token.reveal() == "s3cret"
    with pytest.raises(ConfigErrors) as bad:
        parse_config("c.yaml", text.replace("path:", "pth:"), registry, environ={"RX_TOKEN": "s3cret"})
    assert [str(e) for e in bad.value.errors] == [
        "c.yaml: devices[0].options.pth: unknown key; allowed keys here: path, token_env, token_file"
    ]
