"""``sennheiser-mcp``: ew 300/500 G3, ew G4 (firmware ≥ 1.7.0) and 2000-series receivers over MCP.

Every MCP device shares one UDP socket on port 53212 (see :mod:`.session`). Per device the plugin keeps a
``Push`` subscription alive (renewed well before its timeout, on every poll and in between), folds the
configuration attributes and the cyclic block (RF1, RF2, States, RF, AF, Bat, Msg, Config) into state,
and publishes a fresh snapshot when a block changes it. A poll renews the subscription and waits for the
device's echo, so an unplugged receiver fails its poll within the timeout.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import anyio

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import DeviceTimeout, DeviceUnreachable, ProtocolError
from micboard_exporter.model import ChannelSnapshot, DeviceSnapshot, TransmitterSnapshot
from micboard_exporter.plugin import Plugin, Publish, discard
from micboard_exporter.plugins.sennheiser._common import BackgroundTask, EventCounter
from micboard_exporter.plugins.sennheiser.mcp import codec
from micboard_exporter.plugins.sennheiser.mcp.session import McpHub, Peer

__all__ = ["MCPPlugin"]

_log = logging.getLogger(__name__)

MANUFACTURER: Final = "Sennheiser"
DEFAULT_BIND: Final = "0.0.0.0"
DEFAULT_PUSH_TIMEOUT_S: Final = 60
DEFAULT_CYCLE_MS: Final = 1000
DEFAULT_TIMEOUT_S: Final = 2.0
#: Configuration attributes on change, and a cyclic block at once on warning, pilot or battery changes.
PUSH_MODE: Final = codec.MODE_CONFIG_ON_CHANGE | codec.MODE_BLOCK_ON_WARNING | codec.MODE_BLOCK_ON_PILOT_OR_BATTERY
_RENEW_TICK_S: Final = 0.5


class _Block:
    """The cyclic block being assembled; committed when its last line (``Config``) arrives."""

    def __init__(self) -> None:
        self.rf: dict[int, codec.AntennaRf] = {}
        self.states: codec.States | None = None
        self.current: codec.CurrentRf | None = None
        self.af: tuple[int, ...] | None = None
        self.bat: float | None = None
        self.has_bat = False
        self.msg: frozenset[str] = frozenset()


class _McpDevice:
    """One receiver (or SR in-ear transmitter): its state, its Push timing and its counters."""

    def __init__(self, config: DeviceConfig, hub: McpHub, peer: Peer, publish: Publish) -> None:
        opts = config.options
        self.config = config
        self.hub = hub
        self.peer = peer
        self._publish = publish
        self.push_timeout = int(opts.get("push_timeout", DEFAULT_PUSH_TIMEOUT_S))
        self.cycle_ms = int(opts.get("cycle_ms", DEFAULT_CYCLE_MS))
        self.timeout = float(opts.get("timeout", DEFAULT_TIMEOUT_S))
        self.push = codec.encode_push(self.push_timeout, self.cycle_ms, PUSH_MODE)
        self.name: str | None = None
        self.frequency: codec.Frequency | None = None
        self.firmware: str | None = None
        self.config_counter: int | None = None
        self.config_stale = False
        self.block: _Block | None = None
        self._pending = _Block()
        self.counter = EventCounter()
        self.push_sent_at = -1e9
        self.ready = False
        self._echo = anyio.Event()
        self._got_block = anyio.Event()
        self.push_error: codec.ErrorReply | None = None
        self.malformed = 0
        self._last_published: DeviceSnapshot | None = None
        self.lock = anyio.Lock()

    # ---------------------------------------------------------------- receiving

    def handle(self, datagram: bytes) -> None:
        """Fold every line of one datagram; publish when a cyclic block completed with news."""
        completed = False
        for text in codec.split_lines(datagram):
            try:
                completed |= self._fold(codec.parse_line(text))
            except codec.MalformedLine as exc:
                self.malformed += 1
                _log.debug("sennheiser-mcp %s: %s", self.config.id, exc)
        if completed and self.ready:
            snap = self.snapshot()
            if snap != self._last_published:
                self._last_published = snap
                self._publish(self.config.id, snap)

    def _fold(self, line: codec.Line | codec.ErrorReply) -> bool:
        if isinstance(line, codec.ErrorReply):
            _log.debug("sennheiser-mcp %s: device error %d %s [%s]", self.config.id, line.code, line.text,
                       line.instruction)
            if (line.instruction or "").startswith("Push"):
                self.push_error = line
                self._echo.set()
            return False
        key, pending = line.keyword, self._pending
        if key == "Push":
            codec.parse_push(line)
            self._echo.set()
        elif key == "Name":
            self.name = line.rest or None  # everything after the keyword: names may contain spaces
        elif key == "Frequency":
            self.frequency = codec.parse_frequency(line)
        elif key == "FirmwareRevision":
            self.firmware = line.rest or None
        elif key in ("RF1", "RF2"):
            rf = codec.parse_antenna_rf(line)
            pending.rf[rf.antenna] = rf
        elif key == "States":
            pending.states = codec.parse_states(line)
        elif key == "RF":
            pending.current = codec.parse_current_rf(line)
        elif key in ("AF", "Af"):
            pending.af = codec.parse_af(line)
        elif key == "Bat":
            pending.has_bat = True
            pending.bat = codec.parse_bat(line)
        elif key == "Msg":
            pending.msg = codec.parse_msg(line)
        elif key == "Config":
            counter = codec.parse_int(line)
            if self.config_counter is not None and counter != self.config_counter:
                self.config_stale = True  # TI 1254 p.8: re-read the configuration when the counter moves
            self.config_counter = counter
            self.block, self._pending = pending, _Block()
            self.counter.observe(linked=self._linked(pending), clipping="AF_Peak" in pending.msg)
            self._got_block.set()
            return True
        return False

    @staticmethod
    def _linked(block: _Block) -> bool | None:
        if block.has_bat:
            return block.bat is not None  # ``Bat ?``: no telegram from the transmitter
        return None

    # ---------------------------------------------------------------- polling

    async def send(self, data: bytes) -> None:
        await self.hub.send(self.peer, data)

    async def renew(self) -> None:
        """Re-send ``Push`` (and re-read the configuration after a ``Config`` change)."""
        self.push_sent_at = time.monotonic()
        await self.send(self.push)
        if self.config_stale:
            self.config_stale = False
            await self.send(codec.encode_push(0, 0, codec.MODE_CONFIG_ON_CHANGE))

    def renew_due(self, now: float) -> bool:
        # Half the timeout leaves room for a lost datagram and a retry before the device stops pushing.
        return self.config_stale or now - self.push_sent_at >= self.push_timeout / 2

    async def poll(self) -> DeviceSnapshot:
        async with self.lock:
            self._echo = anyio.Event()
            self.push_error = None
            if self.firmware is None:
                await self.send(codec.encode("FirmwareRevision"))
            if self.name is None:
                # One-shot configuration dump (TI 1254 p.12): Name, Frequency, Squelch, AfOut, Equalizer, Mute.
                await self.send(codec.encode_push(0, 0, codec.MODE_CONFIG_ON_CHANGE))
            if self.block is None:
                # One cyclic block now (TI 1254 p.12), rather than waiting a whole cycle for the first one.
                # One-shot pushes go first: the Push below then sets the lasting subscription.
                await self.send(codec.encode_push(0, 100, 0))
            await self.renew()
            with anyio.move_on_after(self.timeout) as scope:
                await self._echo.wait()
                if self._refusal() is None:
                    await self._got_block.wait()
            err = self._refusal()
            if err is not None:
                raise ProtocolError(f"{self._where()}: device refused Push: {err.code}: {err.text}")
            if scope.cancelled_caught:
                raise DeviceTimeout(
                    f"{self._where()}: no MCP reply within {self.timeout:g} s (the device needs firmware ≥ 1.7.0 "
                    f"and answers only to source port {codec.MCP_PORT})"
                )
            self.ready = True
            snap = self.snapshot()
            self._last_published = snap
            return snap

    def _refusal(self) -> codec.ErrorReply | None:
        """The error the device answered our Push with, if any (set by :meth:`handle`)."""
        return self.push_error

    def _where(self) -> str:
        return f"{self.config.id} ({self.peer[0]}:{self.peer[1]})"

    # ---------------------------------------------------------------- snapshot

    def snapshot(self) -> DeviceSnapshot:
        return DeviceSnapshot(
            device_id=self.config.id,
            manufacturer=MANUFACTURER,
            model=self.config.options.get("model"),
            firmware=self.firmware,
            host=self.config.host,
            channels=(self._channel(),),
            taken_at=time.monotonic(),
        )

    def _channel(self) -> ChannelSnapshot:
        block = self.block
        base: dict[str, Any] = {
            "number": 1,
            "name": self.name,
            "frequency_hertz": self.frequency.khz * 1000.0 if self.frequency else None,
            "rf_dropouts": self.counter.dropouts,
            "audio_clips": self.counter.clips,
        }
        if block is None:
            return ChannelSnapshot(**base, transmitter_known=False)
        if not block.has_bat and block.current is None:
            return self._iem_channel(block, base)
        linked = block.bat is not None
        tx_muted = "TX_Mute" in block.msg or bool(block.states and block.states.values[0] & codec.MUTE_TX)
        rf = {("a", "b")[a - 1]: codec.rf_percent_to_dbm(v.max_pct) for a, v in sorted(block.rf.items()) if a in (1, 2)}
        active = block.current.antenna if block.current and linked else 0
        af = block.af
        return ChannelSnapshot(
            **base,
            rf_dbm=rf,
            antenna_active={"a": active == 1, "b": active == 2} if block.current else {},
            audio_level_dbfs=codec.af_percent_to_dbfs(af[0]) if af and linked else None,
            audio_peak_dbfs=codec.af_percent_to_dbfs(af[1]) if af and linked else None,
            transmitter=TransmitterSnapshot(battery_charge_ratio=block.bat, muted=tx_muted) if linked else None,
        )

    @staticmethod
    def _iem_channel(block: _Block, base: dict[str, Any]) -> ChannelSnapshot:
        """SR IEM G4: the device *is* the transmitter; AF has two channels and their holds (TI 1254 p.35)."""
        af = block.af or ()
        levels, holds = af[0:2], af[2:4]
        rf_muted = bool(block.states.values[0]) if block.states else None
        return ChannelSnapshot(
            **base,
            audio_level_dbfs=codec.af_percent_to_dbfs(max(levels)) if levels else None,
            audio_peak_dbfs=codec.af_percent_to_dbfs(max(holds)) if holds else None,
            transmitter=TransmitterSnapshot(muted=rf_muted),
        )


class MCPPlugin(Plugin):
    """Sennheiser Media Control Protocol over UDP 53212 (one socket for all devices)."""

    name: ClassVar[str] = "sennheiser-mcp"
    default_port: ClassVar[int | None] = codec.MCP_PORT
    manufacturer: ClassVar[str | None] = MANUFACTURER
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "bind": {"type": "string", "default": DEFAULT_BIND,
                     "description": "Local IPv4 address for the shared UDP 53212 socket."},
            "push_timeout": {"type": "integer", "minimum": 2, "maximum": 300, "default": DEFAULT_PUSH_TIMEOUT_S,
                             "description": "Seconds a Push subscription stays valid; renewed at half of it."},
            "cycle_ms": {"type": "integer", "minimum": 100, "maximum": 60000, "multipleOf": 100,
                         "default": DEFAULT_CYCLE_MS, "description": "Cyclic block period in ms."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_TIMEOUT_S},
            "model": {"type": "string", "description": "Model shown in micboard_device_info (MCP cannot tell)."},
        },
    }

    def __init__(self, publish: Publish = discard) -> None:
        super().__init__(publish)
        self._devices: dict[str, _McpDevice] = {}
        self._renewer = BackgroundTask("mcp-renew", self._renew_loop)

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Renew the device's Push, wait for its echo and return the latest folded state."""
        state = self._devices.get(device.id)
        if state is not None and state.config != device:
            await self.forget(device.id)
            state = None
        if state is None:
            state = await self._open(device)
        self._renewer.start()
        return await state.poll()

    async def _open(self, device: DeviceConfig) -> _McpDevice:
        port = device.port or codec.MCP_PORT
        try:
            infos = await anyio.getaddrinfo(device.host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise DeviceUnreachable(f"{device.id}: cannot resolve {device.host}: {exc}") from exc
        peer: Peer = (str(infos[0][4][0]), port)
        hub = McpHub.acquire(str(device.options.get("bind", DEFAULT_BIND)))
        try:
            await hub.start()
            state = _McpDevice(device, hub, peer, self.publish)
            hub.register(peer, state.handle)
        except BaseException:
            await hub.release()
            raise
        self._devices[device.id] = state
        return state

    async def _renew_loop(self) -> None:
        while True:
            await anyio.sleep(_RENEW_TICK_S)
            now = time.monotonic()
            for state in list(self._devices.values()):
                if state.ready and state.renew_due(now):
                    try:
                        await state.renew()
                    except DeviceUnreachable as exc:
                        _log.debug("sennheiser-mcp %s: renewal failed: %s", state.config.id, exc)

    async def forget(self, device_id: str) -> None:
        """Stop the device's Push (``Push 0 0 0``) and release the shared socket."""
        state = self._devices.pop(device_id, None)
        if state is None:
            return
        state.hub.unregister(state.peer)
        # If the stop is lost, the device stops pushing anyway when the Push timeout runs out.
        with anyio.move_on_after(0.5, shield=True), contextlib.suppress(DeviceUnreachable):
            await state.send(codec.encode_push(0, 0, 0))
        await state.hub.release()
        if not self._devices:
            await self._renewer.stop()

    async def aclose(self) -> None:
        """Forget every device; the last one closes the socket."""
        for device_id in list(self._devices):
            await self.forget(device_id)
        await self._renewer.stop()
