"""One persistent command-strings session per Shure receiver: connect, seed, meter, listen, heartbeat.

The session owns the socket (TCP 2202, or UDP 2202 for UHF-R), a background task that reads frames and
folds them into a :class:`~micboard_exporter.plugins.shure.receiver.ReceiverState`, and the reconnect
loop. It does no field parsing itself (that is :mod:`.codec`).

Lifecycle of one connection::

    connect ─► [GET MODEL if the family is auto-detected] ─► GET 0 ALL (or per-property GETs)
            ─► heartbeat GET (replies come in order, so its answer means the seed is complete) ─► ready
            ─► SET METER_RATE ─► listen: every unsolicited REP / SAMPLE batch calls ``on_change``
            ─► on close: SET METER_RATE 00000 first (QLX-D firmware can lock up when a metering client
               vanishes, ref §1.4), then close.

``poll`` (through :meth:`ShureSession.refresh`) is the judge of liveness: it waits for a connection
attempt if there is none, then does one heartbeat round trip with a deadline. A background heartbeat
keeps a quiet connection honest between polls. Every OS / anyio / framing exception is converted to a
:class:`~micboard_exporter.errors.PollError` in exactly one place, :meth:`ShureSession._mapped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

import anyio
import anyio.abc

from micboard_exporter.errors import DeviceTimeout, DeviceUnreachable, PollError, ProtocolError, kept
from micboard_exporter.plugins.shure.codec import (
    REPLY_VERBS,
    DecodeError,
    Family,
    Frame,
    FrameReader,
    FramingError,
    decode,
    encode,
    meter_rate_command,
    model_info,
    parse_frame,
    split_datagram,
)
from micboard_exporter.plugins.shure.receiver import Change, ReceiverState

_log = logging.getLogger(__name__)

#: errnos that mean "nobody is there" rather than "somebody is slow"; everything else is unreachable too,
#: except ETIMEDOUT, which is a timeout.
_TIMEOUT_ERRNOS: Final = frozenset({errno.ETIMEDOUT})
_UDP_MAX_DATAGRAM: Final = 65_535
_STOP_METER_BUDGET_S: Final = 0.25
#: Meter-only changes are published at most this often per receiver (state changes always at once).
_METER_PUBLISH_INTERVAL_S: Final = 0.5

Status = Literal["idle", "connecting", "ready", "failed", "closed"]


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """How to reach and talk to one receiver. Two sessions with equal settings are interchangeable."""

    host: str
    port: int
    family: Family | None
    """``None``: detect from the ``MODEL`` reply (TCP families that answer it)."""
    model: str | None = None
    meter_rate_ms: int = 1000
    reply_timeout: float = 1.0
    heartbeat_interval: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_frame_bytes: int = 4096

    @property
    def address(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"


# ------------------------------------------------------------------------------------------------ links


class _TcpLink:
    """A TCP stream plus the framing buffer (frames may straddle reads; ref §1.2)."""

    def __init__(self, stream: anyio.abc.SocketStream, max_frame_bytes: int) -> None:
        self._stream = stream
        self._reader = FrameReader(max_frame_bytes=max_frame_bytes)

    async def send(self, data: bytes) -> None:
        await self._stream.send(data)

    async def receive(self) -> list[str]:
        try:
            data = await self._stream.receive()
        except anyio.EndOfStream:
            if self._reader.pending:
                raise FramingError(
                    f"connection closed mid-frame with {self._reader.pending} bytes of a frame received"
                ) from None
            raise
        return self._reader.feed(data)

    async def aclose(self) -> None:
        await self._stream.aclose()


class _UdpLink:
    """A connected UDP socket for UHF-R: one datagram holds whole ``* ... *`` frames."""

    def __init__(self, sock: anyio.abc.ConnectedUDPSocket) -> None:
        self._sock = sock

    async def send(self, data: bytes) -> None:
        await self._sock.send(data)

    async def receive(self) -> list[str]:
        return split_datagram(await self._sock.receive())

    async def aclose(self) -> None:
        await self._sock.aclose()


_Link = _TcpLink | _UdpLink


@dataclass
class _Waiter:
    """A command waiting for its reply. ``batch`` commands (the seed) take the first reply of any kind."""

    match: Callable[[Frame], bool]
    batch: bool = False
    event: anyio.Event = field(default_factory=anyio.Event)
    frame: Frame | None = None

    def resolve(self, frame: Frame) -> None:
        self.frame = frame
        self.event.set()


# ------------------------------------------------------------------------------------------------ commands


def heartbeat_command(family: Family) -> tuple[bytes, Callable[[Frame], bool]]:
    """A cheap GET every family answers, and how to recognise its reply.

    ``DEVICE_ID`` for the receivers (D-ULXD, D-QLXD, D-SLXD; AD per MB api.md), ``DEVICE_NAME`` for the
    PSM1000 (PUBS), ``CHAN_NAME`` of channel 1 for UHF-R (MB's own query, ref §3.1).
    """
    if family is Family.UHFR:
        return encode(family, "GET", "CHAN_NAME", 1), _reply_to("CHAN_NAME", 1)
    prop = "DEVICE_NAME" if family is Family.P10T else "DEVICE_ID"
    return encode(family, "GET", prop), _reply_to(prop, None)


def _reply_to(prop: str, channel: int | None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        return frame.verb in REPLY_VERBS and frame.prop == prop and frame.channel == channel

    return match


def seed_commands(family: Family, channels: int, *, get_all: bool) -> list[bytes]:
    """Commands that make the device report its current state.

    ``GET x ALL`` returns every device property and every property of channel x, metered ones included
    (D-ULXD, D-SLXD); QLX-D's document uses ``GET 1 ALL`` (D-QLXD). UHF-R and PSM1000 have no ``ALL``
    (ref §2.4, §2.5), so they, and any receiver that rejects ``ALL`` with ``REP ERR``, get per-property GETs.
    """
    if get_all and family in (Family.ULXD, Family.SLXD, Family.AXTD):
        return [encode(family, "GET", "ALL", 0)]
    if get_all and family is Family.QLXD:
        return [encode(family, "GET", "ALL", 1)]
    device_props, channel_props = _PER_PROPERTY[family]
    commands = [encode(family, "GET", prop) for prop in device_props]
    for ch in range(1, channels + 1):
        commands.extend(encode(family, "GET", prop, ch) for prop in channel_props)
    return commands


_ULXD_PROPS: Final = (
    "CHAN_NAME", "FREQUENCY", "TX_TYPE", "BATT_BARS", "BATT_CHARGE", "BATT_RUN_TIME", "BATT_TYPE", "BATT_HEALTH",
    "BATT_CYCLE", "BATT_TEMP_C", "TX_PWR_LOCK", "TX_MUTE_STATUS", "RF_INT_DET", "ENCRYPTION_WARNING",
)
_PER_PROPERTY: Final[dict[Family, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    Family.ULXD: (("MODEL", "FW_VER"), _ULXD_PROPS),
    Family.QLXD: (("FW_VER",), _ULXD_PROPS),
    Family.SLXD: (("MODEL", "FW_VER"), ("CHAN_NAME", "FREQUENCY", "TX_MODEL", "TX_BATT_BARS", "TX_BATT_MINS")),
    Family.AXTD: (
        ("MODEL", "FW_VER"),
        (
            "CHAN_NAME", "FREQUENCY", "TX_MODEL", "TX_BATT_BARS", "TX_BATT_CHARGE_PERCENT", "TX_BATT_MINS",
            "TX_BATT_TYPE", "TX_BATT_HEALTH_PERCENT", "TX_BATT_CYCLE_COUNT", "TX_BATT_TEMP_C", "TX_LOCK",
            "CHAN_QUALITY", "INTERFERENCE_STATUS", "ENCRYPTION_STATUS",
        ),
    ),
    # MB asks UHF-R for CHAN_NAME, TX_BAT and GROUP_CHAN; FREQUENCY and TX_TYPE per WMS.
    Family.UHFR: ((), ("CHAN_NAME", "FREQUENCY", "TX_BAT", "TX_TYPE")),
    Family.P10T: (("DEVICE_NAME",), ("CHAN_NAME", "FREQUENCY", "RF_MUTE")),
}

#: Channels to ask about when neither the model nor the device says how many there are.
_MAX_CHANNELS: Final[dict[Family, int]] = {
    Family.ULXD: 4, Family.QLXD: 1, Family.SLXD: 4, Family.AXTD: 4, Family.UHFR: 2, Family.P10T: 2,
}


def meter_commands(family: Family, channels: int, rate_ms: int) -> list[bytes]:
    """Start or stop metering: channel 0 (all) where the document allows it, else each channel.

    ULX-D, SLX-D and AD accept x = 0 for all channels (D-ULXD, D-SLXD; CMP sends ``SET 0``); QLX-D's
    document addresses channel 1, MB meters PSM1000 and UHF-R per channel.
    """
    if family in (Family.ULXD, Family.SLXD, Family.AXTD):
        return [meter_rate_command(family, 0, rate_ms)]
    return [meter_rate_command(family, ch, rate_ms) for ch in range(1, channels + 1)]


# ------------------------------------------------------------------------------------------------ session


class ShureSession:
    """The persistent session with one receiver. Create, :meth:`refresh` from ``poll``, :meth:`aclose`."""

    def __init__(self, settings: SessionSettings, on_change: Callable[[ReceiverState], None]) -> None:
        self.settings = settings
        self._on_change = on_change
        self._family: Family | None = settings.family
        self.state: ReceiverState | None = (
            ReceiverState(settings.family, settings.model) if settings.family is not None else None
        )
        self._status: Status = "idle"
        self._status_event = anyio.Event()
        self._error: PollError | None = None
        self._kick = anyio.Event()
        self._closing = False
        self._close_requested = anyio.Event()
        self._task: asyncio.Task[None] | None = None
        self._link: _Link | None = None
        self._conn_scope: anyio.CancelScope | None = None
        self._conn_error: PollError | None = None
        self._waiters: list[_Waiter] = []
        self._send_lock = anyio.Lock()
        self._request_lock = anyio.Lock()
        self._last_heartbeat = 0.0
        self._last_publish = 0.0
        self._metering = False
        self.connections = 0
        """How many connections reached "ready" (for tests and logs)."""
        self.decode_errors = 0
        """Frames whose values could not be read (skipped, not fatal)."""

    # ----- public API --------------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closing

    @property
    def status(self) -> Status:
        """``idle`` before the first refresh, then connecting / ready / failed, ``closed`` after aclose."""
        return self._status

    async def refresh(self) -> ReceiverState:
        """Make sure the session is connected and the device answers; return the live state.

        Raises the :class:`PollError` of the failed connection attempt, or :class:`DeviceTimeout` when the
        heartbeat is not answered in time (the connection is then dropped and re-established).
        """
        if self._closing:
            raise DeviceUnreachable(f"{self.settings.address}: session closed")
        self._start()
        # Connect, detect, seed and its two markers each have one reply deadline.
        budget = self.settings.reply_timeout * 5
        kicked = False
        with anyio.move_on_after(budget):
            while True:
                if self._status == "failed" and not kicked:
                    # Judge the device now, not by an old failure: one immediate attempt, skipping backoff
                    # (the poller's own retries and breaker pace the polls).
                    kicked = True
                    self._retry_now()
                if self._status in ("ready", "failed", "closed"):
                    break
                await self._status_event.wait()
        if self._status == "failed" and self._error is not None:
            raise _fresh(self._error)
        if self._status != "ready" or self.state is None:
            raise DeviceTimeout(
                f"{self.settings.address}: connect and seed: not ready within {budget:g} s"
            )
        try:
            await self._heartbeat("poll heartbeat")
        except PollError as exc:
            self._abort(exc)
            raise
        return self.state

    async def aclose(self) -> None:
        """Stop metering, close the connection and end the background task."""
        self._closing = True
        self._close_requested.set()
        self._kick.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            # A clean close needs one send (METER_RATE 0); give it a little more than that budget.
            with anyio.move_on_after(_STOP_METER_BUDGET_S + self.settings.reply_timeout * 5 + 1.0):
                await asyncio.shield(task)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._set_status("closed")

    # ----- background task ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None or self._task.done():
            # The plugin contract gives no task group that outlives a poll, and the exporter runs on
            # asyncio, so the session's loop is a plain asyncio task that aclose() ends and awaits.
            self._task = asyncio.get_running_loop().create_task(
                self._guarded_run(), name=f"shure-session {self.settings.address}"
            )
            self._set_status("connecting")

    def _retry_now(self) -> None:
        self._set_status("connecting")
        self._kick.set()

    async def _guarded_run(self) -> None:
        try:
            await self._run()
        except Exception:  # noqa: BLE001 - a crashed loop would leave the device silently stale: log it loudly
            _log.exception("shure session %s crashed", self.settings.address)
            self._error = ProtocolError(f"{self.settings.address}: session crashed (see log)")
            self._set_status("failed")

    async def _run(self) -> None:
        backoff = self.settings.backoff_initial
        while not self._closing:
            self._set_status("connecting")
            self._conn_error = None
            reached_ready = await self._connect_and_serve()
            if self.closing:
                break
            error = self._conn_error or DeviceUnreachable(f"{self.settings.address}: connection ended")
            if reached_ready:
                _log.info("shure %s: connection lost, reconnecting: %s", self.settings.address, error)
            else:
                _log.debug("shure %s: connection attempt failed: %s", self.settings.address, error)
            self._error = kept(error)
            self._set_status("failed")
            if reached_ready:
                backoff = self.settings.backoff_initial
            # Jitter keeps a rack of receivers that died together from reconnecting in lock step.
            with anyio.move_on_after(backoff * random.uniform(0.8, 1.2)):  # noqa: S311 - jitter, not crypto
                await self._kick.wait()
            self._kick = anyio.Event()
            backoff = min(backoff * 2, self.settings.backoff_max)

    async def _connect_and_serve(self) -> bool:
        """One connection from connect to close. Returns whether it got ready; errors via _conn_error."""
        s = self.settings
        try:
            with self._mapped("connect"), anyio.fail_after(s.reply_timeout):
                link = await _open_link(s)
        except PollError as exc:
            self._conn_error = kept(exc)
            return False
        self._link = link
        self._waiters = []
        reached_ready = False
        try:
            async with anyio.create_task_group() as tg:
                self._conn_scope = tg.cancel_scope
                tg.start_soon(self._reader, link)
                try:
                    await self._setup()
                except PollError as exc:
                    self._abort(exc)
                else:
                    reached_ready = True
                    self.connections += 1
                    self._set_status("ready")
                    self._notify()
                    tg.start_soon(self._heartbeat_loop)
                    if self.settings.meter_rate_ms > 0:
                        tg.start_soon(self._start_metering)
                    await self._close_requested.wait()
                    tg.cancel_scope.cancel()
        finally:
            self._conn_scope = None
            await self._close_link(link)
        return reached_ready

    async def _setup(self) -> None:
        s = self.settings
        family = self._family
        if family is None:
            family = self._family = await self._detect_family()
        if self.state is None:
            self.state = ReceiverState(family, s.model)
        else:
            # Readings from before a reconnect may be stale; counters survive (they are Prometheus counters).
            self.state.reset_readings()
        state = self.state
        channels = self._channels_to_ask(state)
        batch = await self._send_batch(seed_commands(family, channels, get_all=True))
        await self._seed_marker()
        self._forget(batch)
        if family not in (Family.UHFR, Family.P10T) and any(w.frame is not None and w.frame.is_error for w in batch):
            # REP ERR to GET ALL (HA-SLX reports SLXD4D+ firmware without it): ask property by property.
            _log.info("shure %s: GET ALL rejected, seeding property by property", s.address)
            batch = await self._send_batch(seed_commands(family, self._channels_to_ask(state), get_all=False))
            await self._seed_marker()
            self._forget(batch)

    async def _seed_marker(self) -> None:
        """Return once every reply to the seed commands has arrived.

        Replies come in order, so the answer to a GET sent after the seed marks its end, except that the
        seed itself may contain one reply to the same property (``GET ALL`` includes ``DEVICE_ID``). Two
        heartbeats settle it: the second matching reply is at the latest the first heartbeat's own,
        which follows the whole seed.
        """
        await self._heartbeat("seed")
        await self._heartbeat("seed")

    async def _start_metering(self) -> None:
        family, state = self._family, self.state
        assert family is not None  # set by _setup
        assert state is not None
        rate_ms = self.settings.meter_rate_ms
        # A receiver meters on its own clock from the moment it gets METER_RATE. Receivers connected
        # together (exporter start, a switch coming back) would otherwise send their SAMPLEs in lock step
        # for as long as they run, and every push would queue behind that burst. A random phase within one
        # period spreads them out.
        await anyio.sleep(random.uniform(0.0, rate_ms / 1000.0))  # noqa: S311 - spreading load, not crypto
        self._metering = True  # from here on, every close stops metering first
        try:
            for command in meter_commands(family, state.channel_count, rate_ms):
                await self._send(command, "start metering")
        except PollError as exc:
            self._abort(exc)

    def _channels_to_ask(self, state: ReceiverState) -> int:
        info = model_info(state.model)
        return info.channels if info is not None else _MAX_CHANNELS[state.family]

    async def _detect_family(self) -> Family:
        address = self.settings.address
        try:
            frame = await self._request(encode(Family.ULXD, "GET", "MODEL"), _reply_to("MODEL", None), "detect model")
        except DeviceTimeout as exc:
            # QLX-D and older ULX-D firmware do not answer MODEL (RFD, ref §6): say what to do about it.
            raise DeviceTimeout(f"{exc}; QLX-D and older ULX-D firmware do not answer it: set options.family") from exc
        if frame.is_error:
            raise ProtocolError(f"{address}: detect model: REP ERR to GET MODEL; set options.family")
        info = model_info(frame.text)
        if info is None or info.family in (Family.UHFR, Family.P10T):
            raise ProtocolError(f"{address}: detect model: unknown model {frame.text!r}; set options.family")
        _log.info("shure %s: model %s, family %s", address, frame.text, info.family.value)
        return info.family

    async def _reader(self, link: _Link) -> None:
        # The text of the last SAMPLE per channel: an identical one changes nothing, and at a 100 ms meter
        # rate most of the traffic is SAMPLE, so skipping the parse is the cheapest work there is.
        last_sample: dict[str, str] = {}
        pending_meter = False
        try:
            while True:
                with self._mapped("read"):
                    texts = await link.receive()
                    frames = []
                    for text in texts:
                        stripped = text.strip()
                        if stripped.startswith("SAMPLE "):
                            channel = stripped.split(" ", 2)[1]
                            if last_sample.get(channel) == stripped:
                                continue
                            last_sample[channel] = stripped
                        frames.append(parse_frame(stripped))
                change = Change.NONE
                for frame in frames:
                    self._resolve(frame)
                    if self.state is None:
                        continue  # still detecting the family
                    try:
                        decoded = decode(self.state.family, frame)
                    except DecodeError as exc:
                        self.decode_errors += 1
                        _log.debug("shure %s: skipped %s: %s", self.settings.address, frame, exc)
                        continue
                    change = max(change, self.state.apply(decoded))
                if self._status != "ready":
                    continue
                # State (a REP push, a transmitter coming or going, a dropout or clip counted) is published
                # at once. Meter readings alone are coalesced to one publish per _METER_PUBLISH_INTERVAL_S:
                # at a fast meter rate a snapshot per SAMPLE batch would cost far more than any scrape needs.
                now = time.monotonic()
                if change is Change.STATE or (
                    (change is Change.METER or pending_meter)
                    and now - self._last_publish >= _METER_PUBLISH_INTERVAL_S
                ):
                    self._notify()
                    pending_meter = False
                elif change is Change.METER:
                    pending_meter = True
        except PollError as exc:
            self._abort(exc)

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            wait = self._last_heartbeat + interval - time.monotonic()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            try:
                await self._heartbeat("background heartbeat")
            except PollError as exc:
                self._abort(exc)
                return

    # ----- requests ------------------------------------------------------------------------------------

    async def _heartbeat(self, step: str) -> None:
        family = self._family
        assert family is not None  # set before any heartbeat
        command, match = heartbeat_command(family)
        frame = await self._request(command, match, step)
        if frame.is_error:
            # Any answer proves the receiver is alive; a REP ERR must never mark it down (it may even
            # belong to another command: REP ERR names none).
            _log.debug("shure %s: %s answered with REP ERR", self.settings.address, step)
        self._last_heartbeat = time.monotonic()

    async def _request(self, command: bytes, match: Callable[[Frame], bool], step: str) -> Frame:
        """Send ``command`` and wait for the reply ``match`` accepts (or ``REP ERR``) within the deadline."""
        async with self._request_lock:
            waiter = _Waiter(match)
            self._waiters.append(waiter)
            try:
                await self._send(command, step)
                with anyio.move_on_after(self.settings.reply_timeout):
                    await waiter.event.wait()
            finally:
                self._forget([waiter])
        if waiter.frame is None:
            if self._conn_error is not None:
                raise _fresh(self._conn_error)  # the connection died while we waited
            raise DeviceTimeout(
                f"{self.settings.address}: {step}: no reply to {command.decode().strip()} "
                f"within {self.settings.reply_timeout:g} s"
            )
        return waiter.frame

    async def _send_batch(self, commands: list[bytes]) -> list[_Waiter]:
        """Send commands whose replies just flow into the state; their waiters tell ``REP ERR`` from data.

        The caller forgets the waiters once its seed marker is answered: replies come in order, so by then
        every reply meant for the batch has arrived.
        """
        waiters = [_Waiter(lambda _frame: False, batch=True) for _ in commands]
        self._waiters.extend(waiters)
        for command in commands:
            await self._send(command, "seed")
        return waiters

    def _forget(self, waiters: list[_Waiter]) -> None:
        self._waiters = [w for w in self._waiters if w not in waiters]

    async def _send(self, command: bytes, step: str) -> None:
        link = self._link
        if link is None:
            raise DeviceUnreachable(f"{self.settings.address}: {step}: not connected")
        async with self._send_lock:
            with self._mapped(step), anyio.fail_after(self.settings.reply_timeout):
                await link.send(command)

    def _resolve(self, frame: Frame) -> None:
        """Hand ``frame`` to the command it answers.

        A ``REP ERR`` names no command; the device answers in order, so it belongs to the oldest command
        still waiting. A data reply goes to the oldest request it matches, else it answers the oldest
        waiting seed command (the first reply to ``GET ALL`` shows ``GET ALL`` was accepted).
        """
        pending = [w for w in self._waiters if w.frame is None]
        if frame.is_error:
            if pending:
                pending[0].resolve(frame)
            else:
                _log.debug("shure %s: REP ERR nobody waited for", self.settings.address)
            return
        for waiter in pending:
            if not waiter.batch and waiter.match(frame):
                waiter.resolve(frame)
                return
        if frame.verb in REPLY_VERBS:
            for waiter in pending:
                if waiter.batch:
                    waiter.resolve(frame)
                    return

    # ----- closing and errors --------------------------------------------------------------------------

    def _abort(self, exc: PollError) -> None:
        """Drop the current connection because of ``exc`` (the run loop reconnects with backoff)."""
        if self._conn_error is None:
            self._conn_error = kept(exc)
        if self._conn_scope is not None:
            self._conn_scope.cancel()
        if self._status == "ready":
            self._set_status("connecting")  # no poll may use this connection any more

    async def _close_link(self, link: _Link) -> None:
        self._link = None
        for waiter in self._waiters:
            waiter.event.set()  # wake requests; their frame stays None → timeout/unreachable message
        with anyio.CancelScope(shield=True):
            if self._metering and self._family is not None and self.state is not None:
                # Stop metering before closing, on every close we choose to make (ref §1.4 QLX-D hazard).
                with anyio.move_on_after(_STOP_METER_BUDGET_S), contextlib.suppress(Exception):
                    for command in meter_commands(self._family, self.state.channel_count, 0):
                        await link.send(command)
                self._metering = False
            with contextlib.suppress(Exception):
                await link.aclose()

    @contextlib.contextmanager
    def _mapped(self, step: str) -> Iterator[None]:
        """The one place OS, anyio and framing errors become :class:`PollError` with host:port and step."""
        address = self.settings.address
        try:
            yield
        except PollError:
            raise
        except FramingError as exc:
            raise ProtocolError(f"{address}: {step}: {exc}") from exc
        except TimeoutError as exc:
            raise DeviceTimeout(f"{address}: {step}: no answer within {self.settings.reply_timeout:g} s") from exc
        except socket.gaierror as exc:
            raise DeviceUnreachable(f"{address}: {step}: cannot resolve host ({exc.strerror})") from exc
        except anyio.EndOfStream as exc:
            raise DeviceUnreachable(f"{address}: {step}: connection closed by the device") from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise DeviceUnreachable(f"{address}: {step}: connection lost") from exc
        except OSError as exc:
            code = _errno_of(exc)
            reason = errno.errorcode.get(code, str(exc)) if code is not None else str(exc)
            if code in _TIMEOUT_ERRNOS:
                raise DeviceTimeout(f"{address}: {step}: {reason}") from exc
            raise DeviceUnreachable(f"{address}: {step}: {reason}") from exc

    def _set_status(self, status: Status) -> None:
        if status != self._status:
            self._status = status
        event, self._status_event = self._status_event, anyio.Event()
        event.set()

    def _notify(self) -> None:
        if self.state is None:
            return
        self._last_publish = time.monotonic()
        try:
            self._on_change(self.state)
        except Exception:  # noqa: BLE001 - a broken subscriber must not take the session down
            _log.exception("shure %s: publishing a pushed update failed", self.settings.address)


async def _open_link(s: SessionSettings) -> _Link:
    if s.family is Family.UHFR:
        # Connected UDP: only the receiver's replies are accepted, and ICMP "port unreachable" surfaces
        # as ConnectionRefusedError on the next receive.
        sock = await anyio.create_connected_udp_socket(s.host, s.port)
        return _UdpLink(sock)
    stream = await anyio.connect_tcp(s.host, s.port)
    return _TcpLink(stream, s.max_frame_bytes)


def _errno_of(exc: OSError) -> int | None:
    """The errno of ``exc``, looking inside anyio's "All connection attempts failed" wrapper."""
    if exc.errno is not None:
        return exc.errno
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return _errno_of(cause)
    if isinstance(cause, ExceptionGroup):
        for inner in cause.exceptions:
            if isinstance(inner, OSError) and (code := _errno_of(inner)) is not None:
                return code
    return None


def _fresh(error: PollError) -> PollError:
    """A new exception with the same type, message and cause, so re-raising never grows a traceback."""
    fresh = type(error)(*error.args)
    fresh.__cause__ = error.__cause__
    return fresh
