"""The shared MCP socket: one UDP socket on port 53212 for every MCP device in the process.

MCP devices reply only to source port 53212 (TI 1254 p.5 "the same port number is used"; confirmed by
probes), so the exporter must own that port, once. A :class:`McpHub` binds ``(bind, 53212)`` with
``SO_REUSEADDR`` (so a simulator on another loopback address can use the same port), receives every
datagram and hands it to the handler registered for the sender's address. It does no field parsing.

Hubs are shared process-wide by bind address, with a reference count: the exporter's plugin and a
``/probe`` request's fresh plugin instance must use the same socket, because a second socket with
``SO_REUSEADDR`` on the same address would silently steal the first one's replies on Linux.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Final

import anyio
from anyio.abc import UDPSocket

from micboard_exporter.errors import DeviceUnreachable
from micboard_exporter.plugins.sennheiser._common import BackgroundTask
from micboard_exporter.plugins.sennheiser.mcp.codec import MCP_PORT

_log = logging.getLogger(__name__)

Peer = tuple[str, int]
Handler = Callable[[bytes], None]

_RECEIVE_SIZE: Final = 4096


class PortInUse(DeviceUnreachable):
    """UDP 53212 on the bind address belongs to another program."""


class McpHub:
    """The socket, the receive loop and the peer → handler table."""

    def __init__(self, bind: str, port: int) -> None:
        self.bind = bind
        self.port = port
        self.refs = 0
        self._handlers: dict[Peer, Handler] = {}
        self._raw: socket.socket | None = None
        self._udp: UDPSocket | None = None
        self._ready = anyio.Event()
        self._receiver = BackgroundTask(f"mcp-hub-{bind}:{port}", self._receive_loop)
        self.unknown_datagrams = 0

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def acquire(cls, bind: str, port: int = MCP_PORT) -> McpHub:
        """The hub for ``(bind, port)``, binding the socket now if this is its first user."""
        key = (bind, port)
        hub = _HUBS.get(key)
        if hub is None:
            hub = cls(bind, port)
            hub._bind()  # synchronous, so two concurrent first polls cannot both bind
            _HUBS[key] = hub
        hub.refs += 1
        return hub

    def _bind(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((self.bind, self.port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"UDP port {self.port} on {self.bind} is already in use by another program (Sennheiser "
                    "Wireless Systems Manager, another exporter?). MCP devices answer only to port "
                    f"{self.port}, so one program per host (or per bind address) can talk to them; stop "
                    "the other program or set the sennheiser-mcp option 'bind' to another local address"
                ) from exc
            raise DeviceUnreachable(f"cannot bind UDP {self.bind}:{self.port} for MCP: {exc}") from exc
        self._raw = sock

    async def start(self) -> None:
        """Wrap the bound socket and start receiving (idempotent)."""
        if self._udp is None and self._raw is not None:
            raw, self._raw = self._raw, None
            self._udp = await UDPSocket.from_socket(raw)
            self._receiver.start()
            self._ready.set()
        await self._ready.wait()

    async def release(self) -> None:
        """Drop one reference; the last one closes the socket."""
        self.refs -= 1
        if self.refs > 0:
            return
        _HUBS.pop((self.bind, self.port), None)
        await self._receiver.stop()
        if self._udp is not None:
            await self._udp.aclose()
            self._udp = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    # ---------------------------------------------------------------- peers

    def register(self, peer: Peer, handler: Handler) -> None:
        """Route datagrams from ``peer`` to ``handler``."""
        self._handlers[peer] = handler

    def unregister(self, peer: Peer) -> None:
        """Stop routing ``peer``."""
        self._handlers.pop(peer, None)

    async def send(self, peer: Peer, data: bytes) -> None:
        """Send one datagram; OS errors become :class:`DeviceUnreachable` naming the peer."""
        if self._udp is None:
            raise DeviceUnreachable(f"MCP socket {self.bind}:{self.port} is closed")
        try:
            await self._udp.sendto(data, *peer)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise DeviceUnreachable(f"sending to {peer[0]}:{peer[1]} from {self.bind}:{self.port}: {exc}") from exc

    async def _receive_loop(self) -> None:
        assert self._udp is not None
        udp = self._udp
        while True:
            try:
                data, (host, port) = await udp.receive()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:
                # ICMP port unreachable from one device surfaces here on Linux; it must not stop the others.
                _log.debug("MCP socket %s:%d receive error: %s", self.bind, self.port, exc)
                continue
            handler = self._handlers.get((host, port))
            if handler is None:
                self.unknown_datagrams += 1
                _log.debug("MCP datagram from unconfigured %s:%d dropped", host, port)
                continue
            try:
                handler(data)
            except Exception:  # noqa: BLE001 - one device's bad datagram must not stop the socket
                _log.exception("MCP datagram from %s:%d could not be handled", host, port)


_HUBS: dict[tuple[str, int], McpHub] = {}
