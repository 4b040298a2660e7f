"""The ``shure`` plugin: Shure "command strings" on port 2202 for ULX-D, QLX-D, SLX-D, Axient Digital,
UHF-R (UDP) and PSM1000 (P10T).

One persistent :class:`~.session.ShureSession` per configured device keeps the receiver's state current
from unsolicited ``REP`` and metered ``SAMPLE`` frames and publishes each change at once; ``poll`` checks
liveness with a heartbeat and returns the latest snapshot. Protocol facts: ``shared/reference/
shure-protocols.md``; user documentation: ``docs/devices/shure.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

import anyio

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.durations import DURATION_PATTERN, parse_duration
from micboard_exporter.errors import ProtocolError
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugin import Plugin, Publish, discard
from micboard_exporter.plugins.shure.codec import Family
from micboard_exporter.plugins.shure.receiver import ReceiverState
from micboard_exporter.plugins.shure.session import SessionSettings, ShureSession

__all__ = ["DEFAULT_PORT", "ShurePlugin", "settings_for"]

#: Command strings listen on 2202 for every family (TCP; UDP for UHF-R) (ref §1.1).
DEFAULT_PORT: Final = 2202
DEFAULT_METER_RATE: Final = "1s"
DEFAULT_REPLY_TIMEOUT: Final = "1s"
DEFAULT_HEARTBEAT_INTERVAL: Final = "5s"
DEFAULT_RECONNECT_MAX: Final = "30s"

_DURATION: Final[Mapping[str, Any]] = {"type": "string", "pattern": DURATION_PATTERN}


class ShurePlugin(Plugin):
    """Shure receivers over command strings, with pushed updates between polls."""

    name: ClassVar[str] = "shure"
    default_port: ClassVar[int | None] = DEFAULT_PORT
    manufacturer: ClassVar[str | None] = "Shure"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "family": {
                "description": (
                    "Protocol family. 'auto' asks the receiver for its MODEL (ULX-D with current firmware, "
                    "SLX-D, Axient Digital); QLX-D, older ULX-D, UHF-R and PSM1000 need it set."
                ),
                "enum": ["auto", *(f.value for f in Family)],
                "default": "auto",
            },
            "model": {
                "description": "Model (e.g. ULXD4Q, UR4S) when the device does not report it; sets the channel count.",
                "type": "string",
                "minLength": 1,
            },
            "meter_rate": {
                **_DURATION,
                "description": "Metering (SAMPLE) interval; 0 turns metering off. Below 100ms is raised to 100ms.",
                "default": DEFAULT_METER_RATE,
            },
            "reply_timeout": {
                **_DURATION,
                "description": "Deadline for connecting and for each reply (heartbeat, seed).",
                "default": DEFAULT_REPLY_TIMEOUT,
            },
            "heartbeat_interval": {
                **_DURATION,
                "description": "A quiet connection is checked with a GET this often between polls.",
                "default": DEFAULT_HEARTBEAT_INTERVAL,
            },
            "reconnect_max": {
                **_DURATION,
                "description": "Longest wait between reconnect attempts (backoff doubles from 0.5s).",
                "default": DEFAULT_RECONNECT_MAX,
            },
        },
    }

    def __init__(self, publish: Publish = discard) -> None:
        super().__init__(publish)
        self._sessions: dict[str, ShureSession] = {}

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Connect (or reuse the session), check the receiver answers, and return its current state."""
        try:
            settings = settings_for(device)
        except ValueError as exc:
            raise ProtocolError(f"{device.address}: options: {exc}") from exc
        session = self._sessions.get(device.id)
        if session is not None and session.settings != settings:
            await self.forget(device.id)
            session = None
        if session is None:
            session = self._sessions[device.id] = ShureSession(settings, self._publisher(device))
        state = await session.refresh()
        return state.snapshot(device.id, device.host)

    def _publisher(self, device: DeviceConfig) -> Callable[[ReceiverState], None]:
        device_id, host = device.id, device.host

        def on_change(state: ReceiverState) -> None:
            self.publish(device_id, state.snapshot(device_id, host))

        return on_change

    async def forget(self, device_id: str) -> None:
        """Close the session of a device that left the config (metering is stopped first)."""
        session = self._sessions.pop(device_id, None)
        if session is not None:
            await session.aclose()

    async def aclose(self) -> None:
        """Close every session concurrently, each stopping its metering before it disconnects."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(session.aclose)

    def session(self, device_id: str) -> ShureSession | None:
        """The live session of ``device_id``, if any (for diagnostics and tests)."""
        return self._sessions.get(device_id)


def settings_for(device: DeviceConfig) -> SessionSettings:
    """Session settings from a device's merged options; ``ValueError`` names a bad option."""
    options = device.options
    family_name = str(options.get("family", "auto"))
    family = None if family_name == "auto" else Family(family_name)
    meter_s = parse_duration(str(options.get("meter_rate", DEFAULT_METER_RATE)))
    reply_timeout = parse_duration(str(options.get("reply_timeout", DEFAULT_REPLY_TIMEOUT)))
    if reply_timeout <= 0:
        raise ValueError("reply_timeout must be more than 0")
    model = options.get("model")
    return SessionSettings(
        host=device.host,
        port=device.port if device.port is not None else DEFAULT_PORT,
        family=family,
        model=str(model) if model else None,
        meter_rate_ms=round(meter_s * 1000),
        reply_timeout=reply_timeout,
        heartbeat_interval=max(parse_duration(str(options.get("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL))), 0.1),
        backoff_max=max(parse_duration(str(options.get("reconnect_max", DEFAULT_RECONNECT_MAX))), 0.5),
    )
