"""Shared test helpers for the core: plugins with scripted behaviour and a registry of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import anyio

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import AuthError, DeviceUnreachable, ProtocolError
from micboard_exporter.model import ChannelSnapshot, DeviceSnapshot, TransmitterSnapshot
from micboard_exporter.plugin import Plugin
from micboard_exporter.plugins.synthetic import SyntheticPlugin
from micboard_exporter.registry import PluginEntry, PluginRegistry


def snapshot(device_id: str, *, bars: int | None = 5, charge: float | None = None, tx: bool = True,
             name: str = "Vocal", dropouts: int = 0, clips: int = 0, interference: bool = False) -> DeviceSnapshot:
    """A one-channel snapshot with the given transmitter state."""
    transmitter = TransmitterSnapshot(model="ULXD2", battery_bars=bars, battery_charge_ratio=charge,
                                      battery_type="LION") if tx else None
    channel = ChannelSnapshot(number=1, name=name, frequency_hertz=470_125_000.0, rf_dbm={"a": -60.0, "b": -70.0},
                              antenna_active={"a": True, "b": False}, audio_level_dbfs=-20.0, rf_dropouts=dropouts,
                              audio_clips=clips, interference=interference, transmitter=transmitter)
    return DeviceSnapshot(device_id=device_id, manufacturer="Test", model="T4", firmware="1.2", serial="S1",
                          host="127.0.0.1", channels=(channel,))


class ScriptedPlugin(Plugin):
    """Behaviour per device from its ``mode`` option: ok, hang, raise, protocol, auth, crash, flap, wrong-type."""

    name = "scripted"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"mode": {"type": "string"}, "delay": {"type": "number"}},
    }
    calls: ClassVar[dict[str, int]] = {}
    closed: ClassVar[list[str]] = []
    forgotten: ClassVar[list[str]] = []

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Do what the device's ``mode`` option says."""
        n = ScriptedPlugin.calls[device.id] = ScriptedPlugin.calls.get(device.id, 0) + 1
        mode = device.options.get("mode", "ok")
        delay = float(device.options.get("delay", 0.0))
        if delay:
            await anyio.sleep(delay)
        if mode == "hang":
            await anyio.sleep_forever()
        if mode == "raise":
            raise DeviceUnreachable(f"{device.address}: connection refused")
        if mode == "protocol":
            raise ProtocolError(f"{device.address}: garbage")
        if mode == "auth":
            raise AuthError(f"{device.address}: 401")
        if mode == "crash":
            raise KeyError("bug")
        if mode == "flap" and n % 2 == 0:
            raise DeviceUnreachable(f"{device.address}: flapped")
        if mode == "wrong-type":
            return {"not": "a snapshot"}  # type: ignore[return-value]
        if mode == "other-id":
            return snapshot("someone-else")
        return snapshot(device.id)

    async def forget(self, device_id: str) -> None:
        """Record that the device was forgotten."""
        ScriptedPlugin.forgotten.append(device_id)

    async def aclose(self) -> None:
        """Record the close."""
        ScriptedPlugin.closed.append(self.name)


class SecretivePlugin(Plugin):
    """A plugin with a password option, to test secret handling."""

    name = "secretive"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"password_env": {"type": "string"}, "password_file": {"type": "string"},
                       "password": {"type": "string"}},
    }
    seen: ClassVar[list[str]] = []

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Fail with an auth error unless the password is c0rrect-horse."""
        secret = device.secret("password")
        SecretivePlugin.seen.append(repr(secret))
        if secret is None or secret.reveal() != "c0rrect-horse":
            raise AuthError(f"{device.address}: password rejected (credential {secret})")
        return snapshot(device.id)


def make_registry(*, broken: bool = True) -> PluginRegistry:
    """synthetic + scripted + secretive, and a plugin that failed to import."""
    entries = list(PluginRegistry.from_classes(SyntheticPlugin, ScriptedPlugin, SecretivePlugin).entries.values())
    if broken:
        entries.append(PluginEntry("broken", "vendor_plugin:Plugin", "vendor-plugin", "1.0", None,
                                   "ImportError: No module named 'vendor_sdk'"))
    return PluginRegistry(entries)


def reset_scripted() -> None:
    """Clear the class-level records of :class:`ScriptedPlugin`."""
    ScriptedPlugin.calls.clear()
    ScriptedPlugin.closed.clear()
    ScriptedPlugin.forgotten.clear()
