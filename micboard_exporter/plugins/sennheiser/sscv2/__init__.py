"""``sennheiser-sscv2``: EW-DX receivers and Spectera base stations over HTTPS (SSCv2) with SSE push.

Per device the plugin keeps one :class:`~.session.SSCv2Session` (one httpx client, HTTP/1.1 keep-alive)
and a resource cache fed by GETs and by subscription notifications alike; snapshots are built from that
cache. While the subscription is live a poll is an authenticated check of the session plus a re-read of
transmitter resources that were absent; every ``full_refresh_polls`` polls, and whenever a new
subscription starts, everything is read again. If subscribing fails, plain GETs every poll still work.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Final

import anyio
import httpx

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import PollError, ProtocolError
from micboard_exporter.model import (
    COMBINED_ANTENNA,
    ChannelSnapshot,
    DeviceSnapshot,
    TransmitterSnapshot,
)
from micboard_exporter.plugin import Plugin, Publish, discard
from micboard_exporter.plugins.sennheiser._common import EventCounter
from micboard_exporter.plugins.sennheiser.sscv2 import codec
from micboard_exporter.plugins.sennheiser.sscv2.codec import ABSENT, ResourceValue
from micboard_exporter.plugins.sennheiser.sscv2.session import ResourceNotFound, SessionClosed, SSCv2Session

__all__ = ["SSCv2Plugin"]

_log = logging.getLogger(__name__)

MANUFACTURER: Final = "Sennheiser"
DEFAULT_FULL_REFRESH_POLLS: Final = 12
MAX_PROBED_CHANNELS: Final = 8
_GET_CONCURRENCY: Final = 4


class _Device:
    """State kept for one configured device between polls."""

    def __init__(self, config: DeviceConfig, publish: Publish, transport: httpx.AsyncBaseTransport | None) -> None:
        self.config = config
        self._publish = publish
        self.session = SSCv2Session(config, on_update=self._on_push, transport=transport)
        self.cache: dict[str, ResourceValue] = {}
        self.mobiles: dict[str, ResourceValue] = {}
        """Spectera: paired mobile devices by ``mtUid`` in the base station's order."""
        self.family: str | None = None
        self.channel_count = 0
        self.counters: dict[int, EventCounter] = {}
        self.synced_generation = 0
        self.polls_since_full = 0
        self.full_refresh_polls = int(config.options.get("full_refresh_polls", DEFAULT_FULL_REFRESH_POLLS))
        self.lock = anyio.Lock()
        self.ready = False

    # ---------------------------------------------------------------- polling

    async def poll(self) -> DeviceSnapshot:
        async with self.lock:
            if self.family is None:
                await self._discover()
            if self.family == "spectera":
                await self._poll_spectera()
            else:
                await self._poll_ewdx()
            self.ready = True
            if self.config.options.get("subscribe", True):
                self.session.subscribe(self._subscription_paths())
                await self.session.update_paths()
            return self.snapshot()

    async def _discover(self) -> None:
        value = await self.session.get(codec.IDENTITY)
        with _protocol(self.config):
            identity = codec.parse_identity(value)
        self.cache[codec.IDENTITY] = value
        family = str(self.config.options.get("family", "auto"))
        if family == "auto":
            family = "ewdx" if (identity.product or "") in codec.EWDX_CHANNELS else await self._probe_spectera()
        if family == "ewdx":
            count = codec.EWDX_CHANNELS.get(identity.product or "")
            self.channel_count = count if count is not None else await self._probe_channels()
        self.family = family

    async def _probe_spectera(self) -> str:
        try:
            value = await self.session.get(codec.SPECTERA_MOBILES)
        except ResourceNotFound:
            return "ewdx"
        return "spectera" if isinstance(value, list) else "ewdx"

    async def _probe_channels(self) -> int:
        count = 0
        for ch in range(MAX_PROBED_CHANNELS):
            try:
                await self.session.get(f"/api/channel/{ch}")
            except ResourceNotFound:
                break
            count += 1
        if count == 0:
            raise ProtocolError(f"{self.config.id}: device answers no /api/channel/0; not an SSCv2 receiver?")
        return count

    def _live(self) -> bool:
        return (
            self.session.subscribed
            and self.session.generation == self.synced_generation
            and self.polls_since_full < self.full_refresh_polls
        )

    async def _poll_ewdx(self) -> None:
        if self._live() and await self.session.check_session():
            self.polls_since_full += 1
            # A transmitter that appears is a 422 resource turning into 200, which a subscription on the
            # missing resource may never announce: look again at every absent one.
            absent = [p for ch in range(self.channel_count) for p in codec.transmitter_paths(ch)
                      if self.cache.get(p, ABSENT) is ABSENT]
            await self._get_all(absent)
        else:
            generation = self.session.generation
            paths = [codec.FIRMWARE]
            for ch in range(self.channel_count):
                paths += codec.channel_paths(ch)
                paths += codec.transmitter_paths(ch)
            await self._get_all(paths)
            self.synced_generation = generation if self.session.subscribed else -1
            self.polls_since_full = 0
        self._observe()

    async def _poll_spectera(self) -> None:
        if self._live() and await self.session.check_session():
            self.polls_since_full += 1
        else:
            generation = self.session.generation
            value = await self.session.get(codec.SPECTERA_MOBILES)
            with _protocol(self.config):
                codec.parse_mobile_list(value)  # validates the shape
            self.mobiles = {m.uid: v for v in value if (m := codec.parse_mobile(v)) is not None}
            try:
                self.cache[codec.SPECTERA_RF_CHANNELS] = await self.session.get(codec.SPECTERA_RF_CHANNELS)
            except ResourceNotFound:
                self.cache[codec.SPECTERA_RF_CHANNELS] = ABSENT
            self.synced_generation = generation if self.session.subscribed else -1
            self.polls_since_full = 0
        self._observe()

    async def _get_all(self, paths: Iterable[str]) -> None:
        limiter = anyio.CapacityLimiter(_GET_CONCURRENCY)
        results: dict[str, ResourceValue] = {}

        async def fetch(path: str) -> None:
            async with limiter:
                results[path] = await self.session.get(path)

        try:
            async with anyio.create_task_group() as tg:
                for path in paths:
                    tg.start_soon(fetch, path)
        except BaseExceptionGroup as group:
            # Report the first poll error as itself, so the poller sees one typed reason.
            first = _first_poll_error(group)
            if first is not None:
                raise first from None
            raise
        self.cache.update(results)

    def _subscription_paths(self) -> list[str]:
        if self.family == "spectera":
            return [codec.SPECTERA_MOBILES, codec.SPECTERA_RF_CHANNELS]
        paths: list[str] = []
        for ch in range(self.channel_count):
            paths += codec.channel_paths(ch)
            paths += [p for p in codec.transmitter_paths(ch) if self.cache.get(p, ABSENT) is not ABSENT]
        return paths

    # ---------------------------------------------------------------- pushed updates

    def _on_push(self, updates: dict[str, ResourceValue]) -> None:
        for path, value in updates.items():
            uid = codec.mobile_uid_from_path(path)
            if uid is not None:
                if value is ABSENT:
                    self.mobiles.pop(uid, None)
                else:
                    self.mobiles[uid] = value
            elif path == codec.SPECTERA_MOBILES and isinstance(value, list):
                self.mobiles = {m.uid: v for v in value if (m := codec.parse_mobile(v)) is not None}
            else:
                self.cache[path] = value
        self._observe()
        if self.ready:
            self._publish(self.config.id, self.snapshot())

    def _observe(self) -> None:
        for number, channel in enumerate(self._channel_views(), start=1):
            counter = self.counters.setdefault(number, EventCounter())
            counter.observe(linked=channel[0], clipping=channel[1])

    def _channel_views(self) -> list[tuple[bool | None, bool | None]]:
        """(linked, clipping) per channel from the cache, for event counting."""
        views: list[tuple[bool | None, bool | None]] = []
        if self.family == "spectera":
            for value in self.mobiles.values():
                mobile = codec.parse_mobile(value)
                views.append((None if mobile is None or mobile.syncing else mobile.connected, None))
            return views
        for ch in range(self.channel_count):
            warnings = codec.parse_warnings(self.cache.get(f"/api/channel/{ch}/warnings"))
            tx_warnings = codec.parse_warnings(self.cache.get(f"/api/transmitters/{ch}/warnings")) or frozenset()
            linked = None if warnings is None else "NoLink" not in warnings and self._tx_present(ch)
            clipping = None if warnings is None else "AfPeak" in warnings or "AfPeak" in tx_warnings
            views.append((linked, clipping))
        return views

    def _tx_present(self, ch: int) -> bool:
        return self.cache.get(f"/api/transmitters/{ch}/battery", ABSENT) is not ABSENT or (
            self.cache.get(f"/api/transmitters/{ch}", ABSENT) is not ABSENT
        )

    # ---------------------------------------------------------------- snapshots

    def snapshot(self) -> DeviceSnapshot:
        identity = codec.parse_identity(self.cache.get(codec.IDENTITY, {}))
        if self.family == "spectera":
            channels = self._spectera_channels()
            firmware = None  # no documented firmware resource on Spectera ([CMP-SPEC]; §6 open question 6)
        else:
            channels = tuple(self._ewdx_channel(ch) for ch in range(self.channel_count))
            firmware = codec.parse_firmware(self.cache.get(codec.FIRMWARE))
        return DeviceSnapshot(
            device_id=self.config.id,
            manufacturer=MANUFACTURER,
            model=identity.product,
            firmware=firmware,
            serial=identity.serial,
            host=self.config.host,
            channels=channels,
            taken_at=time.monotonic(),
        )

    def _ewdx_channel(self, ch: int) -> ChannelSnapshot:
        get = self.cache.get
        base = f"/api/channel/{ch}"
        warnings = codec.parse_warnings(get(f"{base}/warnings"))
        rssi = codec.parse_meter(get(f"{base}/signalStrengthIndicator"))
        counter = self.counters.get(ch + 1, EventCounter())
        linked = warnings is not None and "NoLink" not in warnings and self._tx_present(ch)
        transmitter = None
        if linked:
            details = codec.parse_transmitter(get(f"/api/transmitters/{ch}"))
            battery = codec.parse_battery(get(f"/api/transmitters/{ch}/battery"))
            transmitter = TransmitterSnapshot(
                model=details.type if details else None,
                battery_charge_ratio=battery.charge_ratio if battery else None,
                battery_runtime_seconds=battery.runtime_seconds if battery else None,
                battery_type=battery.type if battery else None,
                muted=details.muted if details else None,
            )
        return ChannelSnapshot(
            number=ch + 1,
            name=codec.parse_channel_name(get(base)),
            frequency_hertz=codec.frequency_hz(get(f"/api/rf/channels/{ch}")),
            rf_dbm={COMBINED_ANTENNA: rssi} if rssi is not None else {},
            antenna_active=codec.active_antenna(get(f"{base}/diversityIndicator")) or {},
            link_quality_ratio=codec.link_quality_ratio(get(f"{base}/signalQualityIndicator")),
            audio_level_dbfs=codec.parse_meter(get(f"{base}/level")),
            encryption_error=None if warnings is None else "Aes256Error" in warnings,
            rf_dropouts=counter.dropouts,
            audio_clips=counter.clips,
            transmitter=transmitter,
            transmitter_known=warnings is not None,
        )

    def _spectera_channels(self) -> tuple[ChannelSnapshot, ...]:
        frequencies = codec.spectera_frequencies(self.cache.get(codec.SPECTERA_RF_CHANNELS))
        channels = []
        for number, value in enumerate(self.mobiles.values(), start=1):
            mobile = codec.parse_mobile(value)
            if mobile is None:
                continue
            counter = self.counters.get(number, EventCounter())
            antenna = codec.antenna_label(mobile.dominant_antenna)
            transmitter = None
            if mobile.connected and not mobile.syncing:
                transmitter = TransmitterSnapshot(
                    model=mobile.type,
                    battery_charge_ratio=mobile.charge_ratio,
                    battery_runtime_seconds=mobile.runtime_seconds,
                )
            channels.append(
                ChannelSnapshot(
                    number=number,
                    name=mobile.name,
                    frequency_hertz=frequencies.get(mobile.rf_channel_id),
                    rf_dbm={COMBINED_ANTENNA: mobile.rssi_dbm} if mobile.rssi_dbm is not None and transmitter else {},
                    antenna_active={antenna: True} if antenna and transmitter else {},
                    link_quality_ratio=mobile.link_quality_ratio if transmitter else None,
                    interference=mobile.interference,
                    rf_dropouts=counter.dropouts,
                    audio_clips=counter.clips,
                    transmitter=transmitter,
                    transmitter_known=not mobile.syncing,
                )
            )
        return tuple(channels)


@contextlib.contextmanager
def _protocol(config: DeviceConfig) -> Iterator[None]:
    try:
        yield
    except codec.MalformedResponse as exc:
        raise ProtocolError(f"{config.id} ({config.host}): {exc}") from exc


def _first_poll_error(group: BaseExceptionGroup[Any]) -> PollError | None:
    for exc in group.exceptions:
        if isinstance(exc, PollError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_poll_error(exc)
            if inner is not None:
                return inner
    return None


class SSCv2Plugin(Plugin):
    """Sennheiser Sound Control Protocol v2 (the "Secure" third-party API): EW-DX and Spectera."""

    name: ClassVar[str] = "sennheiser-sscv2"
    default_port: ClassVar[int | None] = 443
    manufacturer: ClassVar[str | None] = MANUFACTURER
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "password_env": {"type": "string", "description": "Environment variable holding the third-party password."},
            "password_file": {"type": "string", "description": "File holding the third-party password."},
            "username": {
                "type": "string",
                "default": "api",
                "description": "User name; 'api' on EW-DX. Spectera may need 'controlSennheiser'.",
            },
            "verify_tls": {"type": "boolean", "default": True, "description": "Verify the device certificate."},
            "ca_file": {"type": "string", "description": "PEM file of the CA (or certificate) to trust."},
            "family": {"enum": ["auto", "ewdx", "spectera"], "default": "auto"},
            "subscribe": {"type": "boolean", "default": True, "description": "Use the SSE subscription."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 5, "description": "Per request, s."},
            "max_body_bytes": {"type": "integer", "minimum": 1024, "default": 262144},
            "sse_idle_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 120},
            "reconnect_min": {"type": "number", "exclusiveMinimum": 0, "default": 0.5},
            "reconnect_max": {"type": "number", "exclusiveMinimum": 0, "default": 30},
            "full_refresh_polls": {"type": "integer", "minimum": 1, "default": DEFAULT_FULL_REFRESH_POLLS},
        },
    }

    def __init__(self, publish: Publish = discard, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(publish)
        self._transport = transport
        self._devices: dict[str, _Device] = {}

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Poll one device (see the module docstring for what a poll reads)."""
        state = self._devices.get(device.id)
        if state is not None and state.config != device:
            await self.forget(device.id)
            state = None
        if state is None:
            state = self._devices[device.id] = _Device(device, self.publish, self._transport)
        try:
            return await state.poll()
        except SessionClosed:
            if not state.ready or self._devices.get(device.id) is state:
                raise
            # A reload closed this device's session while this poll was using it (the device left the
            # config or changed). That is not the device failing: answer with what it told us until a
            # moment ago instead of a failure that would mark a healthy device down until the next poll.
            # Nothing is reopened here; the new config's session takes over at its first poll.
            return state.snapshot()

    async def forget(self, device_id: str) -> None:
        """Close the device's session: stop the stream, DELETE the subscription, close the client."""
        state = self._devices.pop(device_id, None)
        if state is not None:
            await state.session.aclose()

    async def aclose(self) -> None:
        """Close every session."""
        for device_id in list(self._devices):
            await self.forget(device_id)
