"""One SSC v1 device session: a UDP socket, request/answer matching, the meter subscription and its renewal.

The socket is not connected, so the session itself checks that each datagram comes from the device's
address *and* port 45 (replies go to our ephemeral port; anything else on it is dropped and counted).
Requests run one at a time per device; an incoming message answers the pending request when it mentions
any requested address (as a value or an error) or carries a whole-message error. Every message, answer or
notification, is also handed to ``on_message`` so pushed values are folded at once.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Final

import anyio
from anyio.abc import UDPSocket

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import DeviceTimeout, DeviceUnreachable, ProtocolError
from micboard_exporter.plugins.sennheiser._common import BackgroundTask
from micboard_exporter.plugins.sennheiser.ssc import codec

_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 2.0
DEFAULT_MAX_DATAGRAM: Final = 1400
DEFAULT_LIFETIME_S: Final = 60
_RENEW_TICK_S: Final = 0.25


class SscSession:
    """UDP exchange with one device."""

    def __init__(self, device: DeviceConfig, *, on_message: Callable[[codec.Message], None]) -> None:
        opts = device.options
        self.device_id = device.id
        self.host = device.host
        self.port = device.port or codec.DEFAULT_PORT
        self.timeout = float(opts.get("timeout", DEFAULT_TIMEOUT_S))
        self.max_datagram = int(opts.get("max_datagram", DEFAULT_MAX_DATAGRAM))
        self.lifetime = int(opts.get("subscription_lifetime", DEFAULT_LIFETIME_S))
        self._on_message = on_message
        self.peer: tuple[str, int] | None = None
        self._udp: UDPSocket | None = None
        self._lock = anyio.Lock()
        self._wanted: set[str] = set()
        self._want_ack = False
        self._answer: codec.Message | None = None
        self._answered = anyio.Event()
        self._tasks = BackgroundTask(f"ssc-{device.id}", self._background)
        self.sub_paths: list[str] = []
        self.subscribed_at: float | None = None
        self.subscribed = False
        self.strays = 0
        self.malformed = 0

    @property
    def address(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    async def open(self) -> None:
        """Resolve the device, bind an ephemeral port and start receiving (idempotent)."""
        if self._udp is not None:
            return
        try:
            infos = await anyio.getaddrinfo(self.host, self.port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
            self.peer = (str(infos[0][4][0]), self.port)
            # Ephemeral source port: EW-DX replies to the sender's port (binding 45 fails on Linux [CMP-EWDX]).
            self._udp = await anyio.create_udp_socket(family=socket.AF_INET, local_host="0.0.0.0")
        except OSError as exc:
            raise DeviceUnreachable(f"{self.device_id} ({self.address}): {exc}") from exc
        self._tasks.start()

    @property
    def local_port(self) -> int:
        """Our UDP port (for tests)."""
        assert self._udp is not None
        return int(self._udp.extra(anyio.abc.SocketAttribute.local_port))  # noqa: S610 - anyio attribute

    async def aclose(self) -> None:
        """Cancel the subscription (best effort), stop receiving and close the socket."""
        if self._udp is not None and self.subscribed and self.sub_paths:
            with anyio.move_on_after(0.5, shield=True):
                try:
                    await self._send(codec.subscribe_request(self.sub_paths, lifetime=self.lifetime, cancel=True))
                except DeviceUnreachable as exc:
                    _log.debug("sennheiser-ssc %s: cancel failed: %s", self.device_id, exc)
        await self._tasks.stop()
        if self._udp is not None:
            udp, self._udp = self._udp, None
            await udp.aclose()

    # ---------------------------------------------------------------- I/O

    async def _send(self, data: bytes) -> None:
        if self._udp is None or self.peer is None:
            raise DeviceUnreachable(f"{self.device_id} ({self.address}): session closed")
        try:
            await self._udp.sendto(data, *self.peer)
        except OSError as exc:
            raise DeviceUnreachable(f"{self.device_id} ({self.address}): send failed: {exc}") from exc

    async def _background(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._renew_loop)
            await self._receive_loop()
            tg.cancel_scope.cancel()

    async def _receive_loop(self) -> None:
        assert self._udp is not None
        udp = self._udp
        while True:
            try:
                data, source = await udp.receive()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:
                # ICMP port unreachable (device rebooting) is reported on the next receive; keep listening.
                _log.debug("sennheiser-ssc %s: receive error %s", self.device_id, exc)
                continue
            if source != self.peer:
                self.strays += 1
                continue
            try:
                message = codec.parse_message(codec.decode(data))
            except codec.MalformedMessage as exc:
                self.malformed += 1
                _log.debug("sennheiser-ssc %s: %s", self.device_id, exc)
                continue
            if message.subscribe_ack:
                self.subscribed = True
            expired = [p for p, e in message.errors.items() if e.code == codec.SUBSCRIPTION_TERMINATES]
            if expired:
                # 310: the device ended the subscription (lifetime over); renew at the next tick.
                self.subscribed = False
                self.subscribed_at = None
            answers = message.message_error is not None or bool(self._wanted & message.paths)
            if self._want_ack:
                # The initial notification may overtake the acknowledgement: only the echo answers a subscribe.
                answers = message.message_error is not None or message.subscribe_ack
            if (self._wanted or self._want_ack) and answers:
                self._answer = message
                self._answered.set()
            self._on_message(message)

    async def _renew_loop(self) -> None:
        while True:
            await anyio.sleep(_RENEW_TICK_S)
            if self.sub_paths and self.renewal_due():
                try:
                    await self.subscribe(self.sub_paths)
                except (DeviceUnreachable, DeviceTimeout, ProtocolError) as exc:
                    _log.debug("sennheiser-ssc %s: renewal failed: %s", self.device_id, exc)

    def renewal_due(self) -> bool:
        """No subscription, or half its lifetime has passed (room for a lost datagram before it lapses)."""
        return self.subscribed_at is None or time.monotonic() - self.subscribed_at >= self.lifetime / 2

    # ---------------------------------------------------------------- requests

    async def _exchange(self, data: bytes, wanted: set[str], what: str, *, ack: bool = False) -> codec.Message:
        """Send ``data`` and wait for the message that answers it; one retry covers a lost datagram."""
        async with self._lock:
            for attempt in (1, 2):
                self._wanted, self._want_ack, self._answer, self._answered = wanted, ack, None, anyio.Event()
                await self._send(data)
                with anyio.move_on_after(self.timeout / 2):
                    await self._answered.wait()
                answer = self._take_answer()
                if answer is not None:
                    return answer
                _log.debug("sennheiser-ssc %s: no answer to %s (attempt %d)", self.device_id, what, attempt)
            self._wanted, self._want_ack = set(), False
        raise DeviceTimeout(f"{self.device_id} ({self.address}): no answer to {what} within {self.timeout:g} s")

    def _take_answer(self) -> codec.Message | None:
        """The answer the receive loop stored (if any), ending the wait for it."""
        answer = self._answer
        if answer is not None:
            self._wanted, self._want_ack = set(), False
        return answer

    async def get(self, paths: list[str]) -> dict[str, object]:
        """Get ``paths`` in as many datagrams as needed; returns ``{path: value or ABSENT}``."""
        result: dict[str, object] = {}
        pending = codec.chunk_paths(paths, self.max_datagram)
        while pending:
            chunk = pending.pop(0)
            message = await self._exchange(codec.get_request(chunk), set(chunk), f"get {chunk[0]}…")
            if message.message_error is not None:
                err = message.message_error
                if err.code == codec.ANSWER_TOO_LONG and len(chunk) > 1:
                    half = len(chunk) // 2
                    pending[:0] = [chunk[:half], chunk[half:]]
                    continue
                raise ProtocolError(f"{self.device_id} ({self.address}): error {err.code} {err.desc or ''}".rstrip())
            for path in chunk:
                if path in message.values:
                    result[path] = message.values[path]
                elif path in message.errors:
                    err = message.errors[path]
                    if err.code not in (codec.FAILED_DEPENDENCY, codec.ADDRESS_NOT_FOUND):
                        _log.debug("sennheiser-ssc %s: %s answered %d", self.device_id, path, err.code)
                    result[path] = codec.ABSENT
        return result

    async def subscribe(self, paths: list[str]) -> bool:
        """(Re)subscribe ``paths`` with the configured lifetime; True when the device acknowledged it."""
        self.sub_paths = list(paths)
        data = codec.subscribe_request(paths, lifetime=self.lifetime)
        # A refused or unanswered subscription is tried again after half a lifetime, not at every tick.
        self.subscribed_at = time.monotonic()
        try:
            message = await self._exchange(data, set(), "subscribe", ack=True)
        except DeviceTimeout:
            self.subscribed = False
            return False
        if message.message_error is not None or not message.subscribe_ack:
            _log.info("sennheiser-ssc %s: subscription refused; reading meters with gets", self.device_id)
            self.subscribed = False
            return False
        self.subscribed = True
        self.subscribed_at = time.monotonic()
        return True
