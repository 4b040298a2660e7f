"""Shure command-strings simulators: ULX-D, QLX-D, SLX-D, Axient Digital, PSM1000 over TCP, UHF-R over UDP.

Written from ``shared/reference/shure-protocols.md`` alone, with their own tiny request matcher (a regular
expression) and their own renderers, never the plugin's codec, so a misreading cannot hide on both sides.

What each one does, as the reference describes the real device:

* answers ``GET x PROP`` with ``REP x PROP value`` (``REPORT`` for PSM1000 and UHF-R), ``GET x ALL`` with
  every device property and every property of channel x (0 = all), metered ones included (§1.3);
* pads strings in ``{...}`` to the documented width (§1.2) — UHF-R and PSM1000 names unbraced;
* stays silent for a property the model does not have (RFD), answers ``REP ERR`` for a malformed command,
  an unknown verb or an out-of-range channel (D-ULXD);
* on ``SET x METER_RATE nnnnn`` echoes the rate and sends ``SAMPLE`` (PSM1000: ``REPORT`` meter lines) at
  that rate; UHF-R meters with ``* METER x ALL sss *`` in 30 ms units (§1.4);
* sends an unsolicited ``REP`` for every non-metered value that changed when :meth:`changed` is called;
* shows the fault modes of :class:`~micboard_exporter.simulators.base.Faults`.

The most recent commands received (``record_limit`` of them, 10,000 by default) are recorded in
:attr:`ShureSimulator.received` as ``(connection, text)``, and a closed TCP connection as
``(connection, "<EOF>")``, so tests can check ``METER_RATE 0`` came before a close.
"""

from __future__ import annotations

import abc
import contextlib
import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import anyio
import anyio.abc
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from micboard_exporter.simulators.base import SimulatedDevice
from micboard_exporter.simulators.physics import ChannelPhysics

#: What a device sends for binary garbage (the ``garbage`` fault): not ASCII, not a frame.
GARBAGE: Final = b"\x00\xff\xfeNOISE\x80\x81"
EOF_MARK: Final = "<EOF>"
_REQUEST = re.compile(r"^(?P<verb>[A-Z]+)(?:\s+(?P<ch>\d+))?\s+(?P<prop>[A-Z0-9_]+)(?:\s+(?P<args>.*?))?\s*$")
_OUTBOX_SIZE: Final = 4096
#: A UHF-R controller not heard from for this long is forgotten (its samples stop). UDP has no close, so
#: without it every source port a controller ever used (one per reconnect) would be metered forever. The
#: exporter's heartbeat (5 s by default) keeps a live controller well inside it.
UDP_PEER_IDLE_S: Final = 30.0


def _braced(text: str, width: int) -> str:
    """A ``{...}`` string padded with spaces to ``width`` (D-ULXD, D-SLXD)."""
    return "{" + text[:width].ljust(width) + "}"


def _clamp(value: float, low: int, high: int) -> int:
    return int(min(high, max(low, round(value))))


@dataclass
class _Client:
    """One connected controller: its outbox and the meter rate it asked for, per channel."""

    number: int
    outbox: MemoryObjectSendStream[bytes]
    inbox: MemoryObjectReceiveStream[bytes]
    address: Any = None
    meter_s: dict[int, float] = field(default_factory=dict)
    meter_changed: anyio.Event = field(default_factory=anyio.Event)
    expiry: anyio.CancelScope | None = None
    """UDP only: ends the controller's writer and meter loop; each datagram from it pushes the deadline on."""

    def put(self, data: bytes) -> None:
        # A controller that does not read loses messages, as on the real device.
        with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.outbox.send_nowait(data)

    def set_meter(self, channels: list[int], period_s: float) -> None:
        for ch in channels:
            if period_s > 0:
                self.meter_s[ch] = period_s
            else:
                self.meter_s.pop(ch, None)
        self.meter_changed.set()
        self.meter_changed = anyio.Event()


class ShureSimulator(SimulatedDevice, abc.ABC):
    """Common request handling; subclasses render their family's properties."""

    plugin: ClassVar[str] = "shure"
    family: ClassVar[str]
    transmitter_model: ClassVar[str]
    reply_verb: ClassVar[str] = "REP"
    line_end: ClassVar[str] = ""
    max_meter_ms: ClassVar[int] = 65535
    uses_udp: ClassVar[bool] = False
    open_mark: ClassVar[str] = "<"
    close_mark: ClassVar[str] = ">"

    def __init__(self, **kwargs: Any) -> None:
        channels_given = kwargs.get("channels") is not None
        super().__init__(**kwargs)
        if not channels_given:
            for ch in self.channels:
                ch.transmitter_model = self.transmitter_model
        self.received: deque[tuple[int, str]] = deque(maxlen=self.record_limit)
        """Every command text received, as (connection number, text); ``"<EOF>"`` when a client closed."""
        self.connections_served = 0
        self._clients: dict[int, _Client] = {}
        self._pushed: dict[tuple[int, str], str] = {}

    # ----- what subclasses provide -------------------------------------------------------------------

    @abc.abstractmethod
    def device_properties(self) -> dict[str, str]:
        """Device-level property → wire value."""

    @abc.abstractmethod
    def channel_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        """Non-metered channel properties (pushed on change) → wire value."""

    def metered_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        """Metered channel properties (in GET/GET ALL replies, never pushed). Keys may carry an index."""
        return {}

    def sample_lines(self, number: int, ch: ChannelPhysics) -> list[str]:
        """Frames (without framing marks) metering sends for one channel."""
        return []

    @property
    def channel_count(self) -> int:
        """How many channels this model has."""
        return len(self.channels)

    def exporter_device(self, device_id: str) -> dict[str, Any]:
        """A config entry with the family set, so detection never depends on firmware quirks."""
        entry = super().exporter_device(device_id)
        entry["options"] = {"family": self.family, "model": self.model}
        return entry

    # ----- rendering -----------------------------------------------------------------------------------

    def frame(self, body: str) -> bytes:
        """One frame in this device's framing."""
        return f"{self.open_mark} {body} {self.close_mark}{self.line_end}".encode("ascii")

    def _reply(self, channel: int | None, prop: str, value: str) -> bytes:
        where = f"{channel} " if channel is not None else ""
        return self.frame(f"{self.reply_verb} {where}{prop} {value}".rstrip())

    def _error(self) -> bytes:
        return self.frame(f"{self.reply_verb} ERR")

    def _channel_lookup(self, number: int) -> dict[str, str]:
        ch = self.channels[number - 1]
        return {**self.channel_properties(ch), **self.metered_properties(ch)}

    def answer(self, text: str, client: _Client) -> list[bytes]:
        """Replies to one request (the device's own matcher; not the plugin's codec)."""
        match = _REQUEST.match(text.strip())
        if match is None:
            return [self._error()]
        verb, prop = match["verb"], match["prop"]
        channel = int(match["ch"]) if match["ch"] is not None else None
        args = (match["args"] or "").split()
        if channel is not None and channel > self.channel_count:
            return [self._error()]
        if verb == "GET":
            return self._get(channel, prop, args)
        if verb == "SET" and prop == "METER_RATE":
            return self._set_meter(channel, args, client)
        if verb == "METER" and self.uses_udp:
            return self._udp_meter(channel, prop, args, client)
        return [self._error()]

    def _get(self, channel: int | None, prop: str, args: list[str]) -> list[bytes]:
        if prop == "ALL":
            return self._get_all(channel)
        if channel is None or (channel == 0 and prop in self.device_properties()):
            value = self.device_properties().get(prop)
            return [] if value is None else [self._reply(None, prop, value)]
        numbers = range(1, self.channel_count + 1) if channel == 0 else [channel]
        key = " ".join([prop, *args])
        out = []
        for number in numbers:
            values = self._channel_lookup(number)
            if key in values:
                out.append(self._reply(number, key, values[key]))
            elif not args:
                # GET x RSSI (no antenna) answers every antenna, as D-SLXD shows.
                out.extend(self._reply(number, k, v) for k, v in values.items() if k.startswith(prop + " "))
        return out  # nothing known: silence, as for a property this model lacks (RFD)

    def _get_all(self, channel: int | None) -> list[bytes]:
        # Option ``get_all: false`` plays firmware that rejects GET ALL (HA-SLX on SLXD4D+, UNCERTAIN).
        if channel is None or not self.options.get("get_all", True):
            return [self._error()]
        out = [self._reply(None, k, v) for k, v in self.device_properties().items()]
        numbers = range(1, self.channel_count + 1) if channel == 0 else [channel]
        for number in numbers:
            out.extend(self._reply(number, k, v) for k, v in self._channel_lookup(number).items())
        return out

    def _set_meter(self, channel: int | None, args: list[str], client: _Client) -> list[bytes]:
        if channel is None or len(args) != 1 or not args[0].isdigit():
            return [self._error()]
        rate = int(args[0])
        if rate != 0 and not 100 <= rate <= self.max_meter_ms:
            return [self._error()]
        channels = list(range(1, self.channel_count + 1)) if channel == 0 else [channel]
        client.set_meter(channels, rate / 1000.0)
        return [self._reply(channel, "METER_RATE", f"{rate:05d}")]

    def _udp_meter(self, channel: int | None, prop: str, args: list[str], client: _Client) -> list[bytes]:
        # * METER x ALL sss * (30 ms units) / * METER x ALL STOP * (MB, WMS)
        if channel is None or prop != "ALL" or len(args) != 1:
            return [self._error()]
        channels = list(range(1, self.channel_count + 1)) if channel == 0 else [channel]
        if args[0] == "STOP":
            client.set_meter(channels, 0.0)
        elif args[0].isdigit() and int(args[0]) > 0:
            client.set_meter(channels, int(args[0]) * 0.030)
        else:
            return [self._error()]
        return []

    def _pushable(self) -> dict[tuple[int, str], str]:
        values = {(0, k): v for k, v in self.device_properties().items()}
        for number, ch in enumerate(self.channels, start=1):
            values.update({(number, k): v for k, v in self.channel_properties(ch).items()})
        return values

    def changed(self) -> None:
        """Send an unsolicited REP for every non-metered value that changed since the last call."""
        current = self._pushable()
        updates = []
        for key, value in current.items():
            if self._pushed.get(key) != value:
                number, prop = key
                updates.append(self._reply(number or None, prop, value))
        self._pushed = current
        if updates:
            data = b"".join(updates)
            for client in list(self._clients.values()):
                client.put(data)

    def _samples(self, channels: list[int]) -> bytes:
        lines = []
        for number in channels:
            lines.extend(self.sample_lines(number, self.channels[number - 1]))
        return b"".join(self.frame(line) for line in lines)

    # ----- serving -------------------------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind on :attr:`host`/:attr:`port` (updating the port when 0), report started, serve until cancelled."""
        self._pushed = self._pushable()
        if self.uses_udp:
            await self._serve_udp(task_status)
            return
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
            task_status.started()
            await listener.serve(self._handle)

    def _new_client(self, address: Any = None) -> _Client:
        self.connections_served += 1
        send, receive = anyio.create_memory_object_stream[bytes](_OUTBOX_SIZE)
        client = _Client(self.connections_served, send, receive, address)
        self._clients[client.number] = client
        return client

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        if self.faults.refuse:
            await stream.aclose()
            return
        client = self._new_client()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, stream, client, tg.cancel_scope)
                tg.start_soon(self._meter_loop, client)
                await self._read_requests(stream, client)
                tg.cancel_scope.cancel()
        finally:
            del self._clients[client.number]
            client.outbox.close()
            client.inbox.close()
            await stream.aclose()

    async def _read_requests(self, stream: anyio.abc.SocketStream, client: _Client) -> None:
        buffer = b""
        close = self.close_mark.encode()
        while True:
            try:
                data = await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.received.append((client.number, EOF_MARK))
                return
            buffer += data
            while (end := buffer.find(close)) >= 0:
                raw, buffer = buffer[:end], buffer[end + 1 :]
                text = raw.decode("ascii", "replace").strip().lstrip(self.open_mark).strip()
                self.received.append((client.number, text))
                for reply in self.answer(text, client):
                    client.put(reply)
            if len(buffer) > 4096:
                buffer = b""  # a flood without frames: drop it, as a device's line buffer would

    async def _writer(self, stream: anyio.abc.SocketStream, client: _Client, scope: anyio.CancelScope) -> None:
        try:
            await self._write_all(stream, client, scope)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The client went away (a reset, a drip fault it gave up on): end this connection, keep serving.
            scope.cancel()

    async def _write_all(self, stream: anyio.abc.SocketStream, client: _Client, scope: anyio.CancelScope) -> None:
        async for data in client.inbox:
            faults = self.faults
            if faults.stall:
                continue
            if faults.garbage:
                data = GARBAGE
            if faults.close_mid_frame:
                await stream.send(data[: max(1, len(data) // 2)])
                scope.cancel()
                return
            if faults.split_bytes or faults.drip_interval > 0:
                for i in range(len(data)):
                    await stream.send(data[i : i + 1])
                    await anyio.sleep(faults.drip_interval)
            else:
                await stream.send(data)

    async def _meter_loop(self, client: _Client) -> None:
        due: dict[int, float] = {}
        while True:
            if not client.meter_s:
                due.clear()
                await client.meter_changed.wait()
                continue
            now = anyio.current_time()
            for ch, period in client.meter_s.items():
                due.setdefault(ch, now + period)
            for ch in [c for c in due if c not in client.meter_s]:
                del due[ch]
            next_due = min(due.values())
            if next_due > now:
                with anyio.move_on_after(next_due - now):
                    await client.meter_changed.wait()
                continue
            ready = sorted(ch for ch, t in due.items() if t <= now)
            for ch in ready:
                # Keep the cadence (no drift), but never try to catch up on missed ticks.
                due[ch] = max(due[ch] + client.meter_s[ch], now)
            data = self._samples(ready)
            if data:
                client.put(data)

    # ----- UDP (UHF-R) ---------------------------------------------------------------------------------

    async def _serve_udp(self, task_status: TaskStatus[None]) -> None:
        async with await anyio.create_udp_socket(local_host=self.host, local_port=self.port) as sock:
            self.port = sock.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
            task_status.started()
            clients: dict[Any, _Client] = {}
            # One socket, one writer per controller: anyio refuses two concurrent sends on a socket.
            send_lock = anyio.Lock()
            async with anyio.create_task_group() as tg:
                async for data, address in sock:
                    if self.faults.refuse or self.faults.stall:
                        continue
                    client = clients.get(address)
                    if client is None:
                        client = clients[address] = self._new_client(address)
                        client.expiry = anyio.CancelScope()
                        tg.start_soon(self._udp_peer, sock, client, send_lock, clients)
                    assert client.expiry is not None
                    client.expiry.deadline = anyio.current_time() + UDP_PEER_IDLE_S
                    text = data.decode("ascii", "replace")
                    for request in re.findall(r"\*([^*]*)\*", text):
                        self.received.append((client.number, request.strip()))
                        for reply in self.answer(request.strip(), client):
                            client.put(reply)

    async def _udp_peer(self, sock: anyio.abc.UDPSocket, client: _Client, send_lock: anyio.Lock,
                        clients: dict[Any, _Client]) -> None:
        """Serve one controller address until it has been silent for :data:`UDP_PEER_IDLE_S`."""
        assert client.expiry is not None
        try:
            with client.expiry:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._udp_writer, sock, client, send_lock)
                    tg.start_soon(self._meter_loop, client)
        finally:
            clients.pop(client.address, None)
            self._clients.pop(client.number, None)
            client.outbox.close()
            client.inbox.close()

    async def _udp_writer(self, sock: anyio.abc.UDPSocket, client: _Client, send_lock: anyio.Lock) -> None:
        async for data in client.inbox:
            faults = self.faults
            if faults.stall or faults.refuse:
                continue
            if faults.garbage:
                data = GARBAGE
            elif faults.close_mid_frame:
                data = data[: max(1, len(data) // 2)]  # a truncated datagram: the UDP form of a cut frame
            async with send_lock:
                await sock.sendto(data, *client.address)

    # ----- helpers shared by renderers ------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """TCP connections currently open (UDP: controllers heard from within :data:`UDP_PEER_IDLE_S`)."""
        return len(self._clients)

    def received_commands(self, connection: int | None = None) -> list[str]:
        """Command texts received (on one connection, or all), in order."""
        return [text for number, text in self.received if connection is None or number == connection]


# ------------------------------------------------------------------------------------------------- families


def _battery_minutes(ch: ChannelPhysics) -> int:
    return _clamp(ch.runtime_s / 60.0, 0, 65531)


def _antenna_pair(ch: ChannelPhysics) -> str:
    """ULX-D/QLX-D/UHF-R diversity LEDs: AX, XB or XX (D-ULXD)."""
    active = ch.active_antenna()
    if active is None:
        return "XX"
    return "AX" if active == 0 else "XB"


class _UlxdFamily(ShureSimulator, abc.ABC):
    """ULX-D and QLX-D share one command set (D-ULXD, D-QLXD)."""

    max_meter_ms: ClassVar[int] = 99999
    name_width: ClassVar[int] = 8

    def channel_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        on = ch.transmitter_on
        li_ion = on and ch.battery_type == "LION"
        mute_capable = ch.transmitter_model in ("ULXD6", "ULXD8")  # TX mute exists on these only (D-ULXD)
        return {
            "CHAN_NAME": _braced(ch.name, self.name_width),
            "FREQUENCY": f"{round(ch.frequency_hz / 1000):06d}",
            "TX_TYPE": ch.transmitter_model if on else "UNKN",
            "BATT_BARS": f"{ch.battery_bars:03d}" if on else "255",
            "BATT_CHARGE": f"{_clamp(ch.battery_ratio * 100, 0, 100):03d}" if li_ion else "255",
            "BATT_RUN_TIME": f"{_battery_minutes(ch):05d}" if li_ion else "65535",
            "BATT_TYPE": ch.battery_type if on else "UNKN",
            "BATT_HEALTH": f"{_clamp(ch.battery_health_ratio * 100, 0, 100):03d}" if li_ion else "255",
            "BATT_CYCLE": f"{ch.battery_cycles:05d}" if li_ion else "65535",
            "BATT_TEMP_C": f"{_clamp(ch.battery_temperature_c + 40, 0, 251):03d}" if li_ion else "255",
            "TX_PWR_LOCK": "OFF" if on else "UNKN",
            "TX_MUTE_STATUS": ("ON" if ch.muted else "OFF") if on and mute_capable else "UNKN",
            "RF_INT_DET": "CRITICAL" if ch.interference else "NONE",
            "ENCRYPTION_WARNING": "ON" if ch.encryption_error else "OFF",
            "AUDIO_GAIN": "030",
            "GROUP_CHAN": "--,--",
        }

    def sample_lines(self, number: int, ch: ChannelPhysics) -> list[str]:
        # < SAMPLE x ALL nn aaa eee >: RF raw = dBm + 128 (0-115), audio raw = dBFS + 50 (0-50) (D-ULXD).
        rf = _clamp(max(ch.received_dbm()) + 128, 0, 115)
        if not ch.link_up:
            audio = 0
        elif ch.clip_pending:
            ch.clip_pending = False
            audio = 50
        else:
            audio = _clamp(ch.audio_rms_dbfs + 50, 0, 49)
        return [f"SAMPLE {number} ALL {_antenna_pair(ch)} {rf:03d} {audio:03d}"]


class ShureUlxdSimulator(_UlxdFamily):
    """ULXD4 / ULXD4D / ULXD4Q digital receivers."""

    kind: ClassVar[str] = "shure-ulxd"
    family: ClassVar[str] = "ulxd"
    transmitter_model: ClassVar[str] = "ULXD2"
    default_model: ClassVar[str] = "ULXD4Q"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"ULXD4": 1, "ULXD4D": 2, "ULXD4Q": 4}

    def device_properties(self) -> dict[str, str]:
        return {
            "MODEL": _braced(self.model, 32),
            "FW_VER": _braced("2.7.6.0", 24),
            "DEVICE_ID": _braced(f"ULXD{self.seed}", 8),
            "ENCRYPTION": "OFF",
        }


class ShureQlxdSimulator(_UlxdFamily):
    """QLXD4: one channel; its firmware answers no ``MODEL`` (RFD), so the plugin must be told the family."""

    kind: ClassVar[str] = "shure-qlxd"
    family: ClassVar[str] = "qlxd"
    transmitter_model: ClassVar[str] = "QLXD2"
    default_model: ClassVar[str] = "QLXD4"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"QLXD4": 1}

    def device_properties(self) -> dict[str, str]:
        return {
            "FW_VER": _braced("2.1.5", 18),
            "DEVICE_ID": _braced(f"QLXD{self.seed}", 8),
            "MAC_ADDR": f"00:0E:DD:45:60:{self.seed % 256:02X}",
            "ENCRYPTION": "OFF",
        }


class ShureSlxdSimulator(ShureSimulator):
    """SLXD4 / SLXD4D / SLXD4Q+ (D-SLXD command strings v3.0)."""

    kind: ClassVar[str] = "shure-slxd"
    family: ClassVar[str] = "slxd"
    transmitter_model: ClassVar[str] = "SLXD2"
    default_model: ClassVar[str] = "SLXD4D"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"SLXD4": 1, "SLXD4D": 2, "SLXD4Q+": 4}

    def device_properties(self) -> dict[str, str]:
        return {
            "MODEL": _braced(self.model, 32),
            "DEVICE_ID": _braced(f"SLXD{self.seed}", 8),
            "RF_BAND": _braced("G55", 8),
            "FW_VER": _braced("2.0.15.2", 24),
            "LOCK_STATUS": "OFF",
        }

    def channel_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        on = ch.transmitter_on
        return {
            "CHAN_NAME": _braced(ch.name, 31),
            "FREQUENCY": f"{round(ch.frequency_hz / 1000):07d}",
            "GROUP_CHANNEL": _braced("--,--", 9),
            "TX_MODEL": ch.transmitter_model if on else "UNKNOWN",
            "TX_BATT_BARS": f"{ch.battery_bars:03d}" if on else "255",
            "TX_BATT_MINS": f"{_battery_minutes(ch):05d}" if on else "65535",
            "AUDIO_GAIN": "030",
        }

    def metered_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        levels = ch.received_dbm()
        return {
            "AUDIO_LEVEL_PEAK": f"{_clamp(ch.audio_peak_dbfs + 120, 0, 120):03d}",
            "AUDIO_LEVEL_RMS": f"{_clamp(ch.audio_rms_dbfs + 120, 0, 120):03d}",
            "RSSI 1": f"{_clamp(levels[0] + 120, 0, 120):03d}",
            "RSSI 2": f"{_clamp(levels[-1] + 120, 0, 120):03d}",
        }

    def sample_lines(self, number: int, ch: ChannelPhysics) -> list[str]:
        # < SAMPLE x ALL audPeak audRms rfRssi >, each raw = value + 120 (D-SLXD).
        if not ch.link_up:
            peak, rms = 0, 0
        else:
            peak = 120 if ch.clip_pending else _clamp(ch.audio_peak_dbfs + 120, 0, 119)
            rms = _clamp(ch.audio_rms_dbfs + 120, 0, 120)
            ch.clip_pending = False
        rssi = _clamp(max(ch.received_dbm()) + 120, 0, 120)
        return [f"SAMPLE {number} ALL {peak:03d} {rms:03d} {rssi:03d}"]


class ShureAxtdSimulator(ShureSimulator):
    """Axient Digital AD4D / AD4Q; options ``quadversity: true`` and ``fd_mode: FD-C`` change SAMPLE."""

    kind: ClassVar[str] = "shure-axtd"
    family: ClassVar[str] = "axtd"
    transmitter_model: ClassVar[str] = "AD2"
    default_model: ClassVar[str] = "AD4Q"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"AD4D": 2, "AD4Q": 4, "AD4D-A": 2, "AD4Q-A": 4}

    @property
    def quadversity(self) -> bool:
        """Four antennas per channel (RFD)."""
        return bool(self.options.get("quadversity", False))

    @property
    def fd_mode(self) -> str:
        """``OFF`` or ``FD-C`` (a second RF section in SAMPLE)."""
        return str(self.options.get("fd_mode", "OFF"))

    def _levels(self, ch: ChannelPhysics) -> list[float]:
        levels = ch.received_dbm()
        if self.quadversity:
            # Two more antennas a few dB down from the physics' two.
            levels = [*levels, max(-100.0, levels[0] - 3.0), max(-100.0, levels[-1] - 4.0)]
        return levels

    def device_properties(self) -> dict[str, str]:
        return {
            "MODEL": _braced(self.model, 32),
            "FW_VER": _braced("1.1.43.0", 24),
            "DEVICE_ID": _braced(f"RF {self.seed}", 31),
            "RF_BAND": _braced("G57", 8),
            "ENCRYPTION_MODE": "OFF",
            "QUADVERSITY_MODE": "ON" if self.quadversity else "OFF",
            "TRANSMISSION_MODE": "STANDARD",
        }

    def channel_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        on = ch.transmitter_on
        li_ion = on and ch.battery_type == "LION"
        return {
            "CHAN_NAME": _braced(ch.name, 31),
            "FREQUENCY": f"{round(ch.frequency_hz / 1000):07d}",
            "TX_MODEL": ch.transmitter_model if on else "UNKNOWN",
            "TX_BATT_BARS": f"{ch.battery_bars:03d}" if on else "255",
            "TX_BATT_CHARGE_PERCENT": f"{_clamp(ch.battery_ratio * 100, 0, 100):03d}" if li_ion else "255",
            "TX_BATT_MINS": f"{_battery_minutes(ch):05d}" if li_ion else "65535",
            "TX_BATT_TYPE": ch.battery_type if on else "UNKN",
            "TX_BATT_HEALTH_PERCENT": f"{_clamp(ch.battery_health_ratio * 100, 0, 100):03d}" if li_ion else "255",
            "TX_BATT_CYCLE_COUNT": f"{ch.battery_cycles:05d}" if li_ion else "65535",
            "TX_BATT_TEMP_C": f"{_clamp(ch.battery_temperature_c + 40, 0, 251):03d}" if li_ion else "255",
            "TX_LOCK": "NONE" if on else "UNKNOWN",
            "TX_MUTE_MODE_STATUS": ("MUTE" if ch.muted else "ON") if on else "UNKNOWN",
            "TX_OFFSET": "012" if on else "255",
            "INTERFERENCE_STATUS": "DETECTED" if ch.interference else "NONE",
            "ENCRYPTION_STATUS": "ERROR" if ch.encryption_error else "OK",
            "UNREGISTERED_TX_STATUS": "OK",
            "FD_MODE": self.fd_mode,
            "SLOT_STATUS 1": "LINKED.ACTIVE" if on else "EMPTY",
        }

    def _quality(self, ch: ChannelPhysics) -> int:
        return _clamp(ch.link_quality_ratio() * 5, 0, 5) if ch.transmitter_on else 255

    def _audio(self, ch: ChannelPhysics) -> tuple[int, int, int]:
        """(LED bitmap, peak raw, rms raw); bit 0x80 is the OL LED (MB mic.py), raw = dBFS + 120."""
        if not ch.link_up:
            return 0, 5, 20
        clip = ch.clip_pending
        ch.clip_pending = False
        leds = _clamp((ch.audio_rms_dbfs + 60) / 60 * 7, 0, 7)
        bitmap = (1 << leds) - 1 | (0x80 if clip else 0)
        peak = 120 if clip else _clamp(ch.audio_peak_dbfs + 120, 0, 119)
        return bitmap, peak, _clamp(ch.audio_rms_dbfs + 120, 0, 120)

    def _rf_section(self, ch: ChannelPhysics) -> str:
        levels = self._levels(ch)
        best = max(levels)
        stats = "".join("B" if ch.link_up and level >= best - 6.0 else "X" for level in levels)
        pairs = " ".join(f"{_clamp((v + 100) / 10, 0, 31):02d} {_clamp(v + 120, 0, 120):03d}" for v in levels)
        return f"{stats} {pairs}"

    def metered_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        bitmap, peak, rms = self._audio(ch)
        values = {
            "CHAN_QUALITY": f"{self._quality(ch):03d}",
            "AUDIO_LEVEL_RMS": f"{rms:03d}",
            "AUDIO_LEVEL_PEAK": f"{peak:03d}",
            "AUDIO_LED_BITMAP": f"{bitmap:03d}",
        }
        for i, level in enumerate(self._levels(ch), start=1):
            values[f"RSSI {i}"] = f"{_clamp(level + 120, 0, 120):03d}"
        return values

    def sample_lines(self, number: int, ch: ChannelPhysics) -> list[str]:
        # < SAMPLE x ALL qual audBitmap audPeak audRms rfAntStats (rfBitmap rfRssi)×n [FD-C section] > (RFD)
        bitmap, peak, rms = self._audio(ch)
        section = self._rf_section(ch)
        rf = f"{section} {section}" if self.fd_mode == "FD-C" else section
        return [f"SAMPLE {number} ALL {self._quality(ch):03d} {bitmap:03d} {peak:03d} {rms:03d} {rf}"]


class ShureUhfrSimulator(ShureSimulator):
    """UR4S / UR4D over UDP with ``*`` framing and ``REPORT`` replies (MB, WMS emulator)."""

    kind: ClassVar[str] = "shure-uhfr"
    family: ClassVar[str] = "uhfr"
    transmitter_model: ClassVar[str] = "UR2"
    default_model: ClassVar[str] = "UR4D"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"UR4S": 1, "UR4D": 2}
    reply_verb: ClassVar[str] = "REPORT"
    uses_udp: ClassVar[bool] = True
    open_mark: ClassVar[str] = "*"
    close_mark: ClassVar[str] = "*"

    def device_properties(self) -> dict[str, str]:
        return {}  # UHF-R identity comes over the SNet discovery protocol, not command strings

    def channel_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        on = ch.transmitter_on
        return {
            "CHAN_NAME": ch.name[:12].ljust(12).replace(" ", "_"),
            "FREQUENCY": f"{round(ch.frequency_hz / 1000):06d}",
            "GROUP_CHAN": "01 05",
            "TX_BAT": str(max(1, ch.battery_bars)) if on else "U",
        }

    def sample_lines(self, number: int, ch: ChannelPhysics) -> list[str]:
        # * SAMPLE x ALL nn aaa bbb d eee *: diversity, RF A/B as −dBm (100 = floor), bars, audio bitmap.
        levels = ch.received_dbm()
        a, b = (_clamp(-v, 0, 100) for v in (levels[0], levels[-1]))
        bars = str(max(1, ch.battery_bars)) if ch.transmitter_on else "U"
        if ch.link_up:
            leds = _clamp((ch.audio_rms_dbfs + 60) / 60 * 7, 0, 7)
            bitmap = (1 << leds) - 1 | (0x80 if ch.clip_pending else 0)
            ch.clip_pending = False
        else:
            bitmap = 0
        return [f"SAMPLE {number} ALL {_antenna_pair(ch)} {a:03d} {b:03d} {bars} {bitmap:03d}"]


class ShureP10tSimulator(ShureSimulator):
    """PSM1000 P10T in-ear transmitter: ``REPORT`` replies, CRLF after every frame, no SAMPLE (PUBS, CMP-PSM)."""

    kind: ClassVar[str] = "shure-p10t"
    family: ClassVar[str] = "p10t"
    transmitter_model: ClassVar[str] = "P10T"
    default_model: ClassVar[str] = "P10T"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"P10T": 2}
    reply_verb: ClassVar[str] = "REPORT"
    line_end: ClassVar[str] = "\r\n"
    max_meter_ms: ClassVar[int] = 99999

    def device_properties(self) -> dict[str, str]:
        return {"DEVICE_NAME": f"IEMRACK{self.seed % 10}"}

    def channel_properties(self, ch: ChannelPhysics) -> dict[str, str]:
        return {
            "CHAN_NAME": ch.name[:8],
            "FREQUENCY": f"{round(ch.frequency_hz / 1000):06d}",
            "GROUP_CHAN": "01,05",
            "RF_MUTE": "0" if ch.transmitter_on else "1",
            "RF_TX_LVL": "050",
        }

    def sample_lines(self, number: int, ch: ChannelPhysics) -> list[str]:
        # Meters arrive as REPORT AUDIO_IN_LVL_L/_R with 11-character values of undocumented units (CMP-PSM);
        # we send a level-like number on MB's bucket scale.
        raw = _clamp(2_502_970 * math.pow(10, ch.audio_rms_dbfs / 20) * 4, 0, 99_999_999_999)
        return [f"REPORT {number} AUDIO_IN_LVL_L {raw:011d}", f"REPORT {number} AUDIO_IN_LVL_R {raw:011d}"]
