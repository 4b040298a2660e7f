"""``example-http``: polls ``GET /api/status`` of a receiver that answers JSON (a minimal plugin).

The device answers ``{"model": "EX2", "firmware": "1.2", "serial": "X1", "channels": [{"name": "Vox",
"frequency_mhz": 566.125, "rf_dbm": -61.0, "transmitter": true, "battery_percent": 80, "muted": false}]}``;
``battery_percent`` 255 means "unknown".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import AuthError, DeviceTimeout, DeviceUnreachable, ProtocolError
from micboard_exporter.model import (
    ChannelSnapshot,
    DeviceSnapshot,
    TransmitterSnapshot,
    known,
    mhz_to_hz,
    percent_to_ratio,
)
from micboard_exporter.plugin import Plugin, Publish, discard


class ExampleHttpPlugin(Plugin):
    """A receiver that answers JSON over HTTP (example plugin)."""

    name = "example-http"
    manufacturer = "Example"
    default_port = 8080
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "path": {"type": "string", "pattern": "^/", "default": "/api/status", "description": "Status URL path."},
            "token_env": {"type": "string", "description": "Environment variable holding the bearer token."},
            "token_file": {"type": "string", "description": "File holding the bearer token."},
        },
    }

    def __init__(self, publish: Publish = discard) -> None:
        super().__init__(publish)
        self._client = httpx.AsyncClient()  # one connection pool for all devices of this plugin

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Fetch the status document and map it to a snapshot."""
        url = f"http://{device.host}:{device.port or self.default_port}{device.options.get('path', '/api/status')}"
        token = device.secret("token")
        headers = {"Authorization": f"Bearer {token.reveal()}"} if token else {}
        try:  # the one place transport errors become the exporter's error types
            response = await self._client.get(url, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeviceTimeout(f"{device.address}: no answer") from exc
        except httpx.TransportError as exc:
            raise DeviceUnreachable(f"{device.address}: {type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            raise AuthError(f"{device.address}: HTTP {response.status_code}; check token_env/token_file")
        try:
            response.raise_for_status()
            doc = response.json()
            channels = tuple(_channel(n, ch) for n, ch in enumerate(doc["channels"], start=1))
        except (httpx.HTTPStatusError, ValueError, LookupError, TypeError, AttributeError) as exc:
            raise ProtocolError(f"{device.address}: unusable answer: {type(exc).__name__}: {exc}") from exc
        return DeviceSnapshot(device_id=device.id, manufacturer=self.manufacturer, model=doc.get("model"),
                              firmware=doc.get("firmware"), serial=doc.get("serial"), host=device.host,
                              channels=channels)

    async def aclose(self) -> None:
        """Close the connection pool (created here, so closed here)."""
        await self._client.aclose()


def _channel(number: int, ch: dict[str, Any]) -> ChannelSnapshot:
    percent = known(ch.get("battery_percent"), (255,))  # unknown is absent, never 0
    tx = TransmitterSnapshot(
        battery_charge_ratio=None if percent is None else percent_to_ratio(float(percent)), muted=ch.get("muted")
    ) if ch.get("transmitter") else None
    return ChannelSnapshot(number=number, name=ch.get("name"), frequency_hertz=mhz_to_hz(float(ch["frequency_mhz"])),
                           rf_dbm={"combined": float(ch["rf_dbm"])}, transmitter=tx)
