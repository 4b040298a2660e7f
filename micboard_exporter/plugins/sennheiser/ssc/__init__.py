"""``sennheiser-ssc``: EW-DX receivers in third-party mode "Legacy" (SSC v1, JSON over UDP 45).

Per device the plugin keeps one :class:`~.session.SscSession`. A poll gets the receiver and transmitter
addresses (split so every answer fits a datagram), keeps a meter subscription (RSSI, RSQI, diversity, AF)
alive through ``/osc/state/subscribe`` with a lifetime and renewal, and builds the snapshot from a cache
that notifications update between polls, publishing each change at once. If the device does not
acknowledge the subscription, the meters are read with plain gets instead.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import anyio

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import ProtocolError
from micboard_exporter.model import COMBINED_ANTENNA, ChannelSnapshot, DeviceSnapshot, TransmitterSnapshot
from micboard_exporter.plugin import Plugin, Publish, discard
from micboard_exporter.plugins.sennheiser._common import EventCounter
from micboard_exporter.plugins.sennheiser.ssc import codec
from micboard_exporter.plugins.sennheiser.ssc.codec import ABSENT
from micboard_exporter.plugins.sennheiser.ssc.session import SscSession

__all__ = ["SSCPlugin"]

MANUFACTURER: Final = "Sennheiser"
MAX_CHANNELS: Final = 4


class _SscDevice:
    def __init__(self, config: DeviceConfig, publish: Publish) -> None:
        self.config = config
        self._publish = publish
        self.session = SscSession(config, on_message=self._on_message)
        self.cache: dict[str, Any] = {}
        self.channel_count = 0
        self.counters: dict[int, EventCounter] = {}
        self.ready = False
        self.lock = anyio.Lock()
        self._updated = anyio.Event()

    async def poll(self) -> DeviceSnapshot:
        async with self.lock:
            await self.session.open()
            if self.channel_count == 0:
                self.cache.update(await self.session.get(list(codec.IDENTITY_PATHS)))
                self.channel_count = await self._count_channels()
            paths: list[str] = []
            for n in range(1, self.channel_count + 1):
                paths += codec.receiver_paths(n) + codec.transmitter_paths(n)
            self.cache.update(await self.session.get(paths))
            meters = [p for n in range(1, self.channel_count + 1) for p in codec.meter_paths(n)]
            # Subscribe only the first time: renewals (and retries after a refusal) are the session's job.
            first = self.config.options.get("subscribe", True) and self.session.sub_paths != meters
            if first and await self.session.subscribe(meters):
                await self._initial_values(meters)
            if not self.session.subscribed:
                self.cache.update(await self.session.get(meters))
            self._observe()
            self.ready = True
            return self.snapshot()

    async def _initial_values(self, paths: list[str]) -> None:
        """Wait (briefly) for the notification with current values that follows a subscription's echo."""
        with anyio.move_on_after(self.session.timeout / 2):
            while any(p not in self.cache for p in paths):
                await self._updated.wait()
                self._updated = anyio.Event()

    async def _count_channels(self) -> int:
        # EW-DX SSC v1 product strings are not documented (§6 item 5): ask for rx4, then rx2, by name.
        for count in (MAX_CHANNELS, 2, 1):
            answer = await self.session.get([f"/rx{count}/name"])
            if answer.get(f"/rx{count}/name", ABSENT) is not ABSENT:
                return count
        raise ProtocolError(f"{self.config.id} ({self.session.address}): no /rx1/name; not an SSC receiver?")

    def _on_message(self, message: codec.Message) -> None:
        self.cache.update(message.values)
        self._updated.set()
        for path, err in message.errors.items():
            if err.code in (codec.FAILED_DEPENDENCY, codec.ADDRESS_NOT_FOUND):
                self.cache[path] = ABSENT
        if self.ready and message.values and not message.subscribe_ack:
            self._observe()
            self._publish(self.config.id, self.snapshot())

    def _observe(self) -> None:
        for n in range(1, self.channel_count + 1):
            warnings = codec.warnings(self.cache.get(f"/rx{n}/warnings"))
            tx_warnings = codec.warnings(self.cache.get(f"/mates/tx{n}/warnings")) or frozenset()
            linked = None if warnings is None else "NoLink" not in warnings and self._tx_present(n)
            clipping = None if warnings is None else "AfPeak" in warnings or "AfPeak" in tx_warnings
            self.counters.setdefault(n, EventCounter()).observe(linked=linked, clipping=clipping)

    def _tx_present(self, n: int) -> bool:
        # Error 424 on /mates/txN/* = transmitter not present (EW-DX guide).
        return any(self.cache.get(p, ABSENT) is not ABSENT for p in codec.transmitter_paths(n))

    def snapshot(self) -> DeviceSnapshot:
        get = self.cache.get
        return DeviceSnapshot(
            device_id=self.config.id,
            manufacturer=MANUFACTURER,
            model=codec.text(get("/device/identity/product")),
            firmware=codec.text(get("/device/identity/version")),
            serial=codec.text(get("/device/identity/serial")),
            host=self.config.host,
            channels=tuple(self._channel(n) for n in range(1, self.channel_count + 1)),
            taken_at=time.monotonic(),
        )

    def _channel(self, n: int) -> ChannelSnapshot:
        get = self.cache.get
        warnings = codec.warnings(get(f"/rx{n}/warnings"))
        linked = warnings is not None and "NoLink" not in warnings and self._tx_present(n)
        transmitter = None
        if linked:
            tx = f"/mates/tx{n}"
            kind = get(f"{tx}/battery/type")
            gauge = codec.number(get(f"{tx}/battery/gauge"))
            mute = get(f"{tx}/mute")
            transmitter = TransmitterSnapshot(
                model=codec.text(get(f"{tx}/type")),
                battery_charge_ratio=None if gauge is None or gauge < 0 else min(gauge / 100.0, 1.0),
                battery_runtime_seconds=codec.battery_runtime_s(kind, get(f"{tx}/battery/lifetime")),
                battery_type=codec.BATTERY_TYPES.get(kind) if isinstance(kind, str) else None,
                muted=mute if isinstance(mute, bool) else None,
            )
        rssi = codec.number(get(f"/m/rx{n}/rssi"))
        rsqi = codec.number(get(f"/m/rx{n}/rsqi"))
        counter = self.counters.get(n, EventCounter())
        return ChannelSnapshot(
            number=n,
            name=codec.text(get(f"/rx{n}/name")),
            frequency_hertz=codec.frequency_hz(get(f"/rx{n}/frequency")),
            rf_dbm={COMBINED_ANTENNA: rssi} if rssi is not None else {},
            antenna_active=codec.diversity(get(f"/m/rx{n}/divi")) or {},
            # RSQI is % 0..100 (§2.6) → ratio.
            link_quality_ratio=None if rsqi is None else min(max(rsqi / 100.0, 0.0), 1.0),
            audio_level_dbfs=codec.number(get(f"/m/rx{n}/af")),
            encryption_error=None if warnings is None else "Aes256Error" in warnings,
            rf_dropouts=counter.dropouts,
            audio_clips=counter.clips,
            transmitter=transmitter,
            transmitter_known=warnings is not None,
        )


class SSCPlugin(Plugin):
    """Sennheiser Sound Control Protocol v1 over UDP (EW-DX in Legacy mode)."""

    name: ClassVar[str] = "sennheiser-ssc"
    default_port: ClassVar[int | None] = codec.DEFAULT_PORT
    manufacturer: ClassVar[str | None] = MANUFACTURER
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 2.0,
                        "description": "Seconds to wait for each answer (one retry within it)."},
            "subscribe": {"type": "boolean", "default": True, "description": "Subscribe to the meters."},
            "subscription_lifetime": {"type": "integer", "minimum": 2, "maximum": 3600, "default": 60,
                                      "description": "Lifetime asked for; renewed at half of it."},
            "max_datagram": {"type": "integer", "minimum": 256, "maximum": 65507, "default": 1400,
                             "description": "Largest answer to ask for in one request, in bytes."},
        },
    }

    def __init__(self, publish: Publish = discard) -> None:
        super().__init__(publish)
        self._devices: dict[str, _SscDevice] = {}

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Get settings and transmitter state, keep the meter subscription, return the snapshot."""
        state = self._devices.get(device.id)
        if state is not None and state.config != device:
            await self.forget(device.id)
            state = None
        if state is None:
            state = self._devices[device.id] = _SscDevice(device, self.publish)
        return await state.poll()

    async def forget(self, device_id: str) -> None:
        """Cancel the subscription and close the socket."""
        state = self._devices.pop(device_id, None)
        if state is not None:
            await state.session.aclose()

    async def aclose(self) -> None:
        """Close every session."""
        for device_id in list(self._devices):
            await self.forget(device_id)
