"""The HTTPS transport of SSCv2 sessions: httpx's own, over a network backend that never orphans a socket.

Why this exists: httpcore (1.0.x) opens the TCP connection, then calls ``start_tls`` on it. Its anyio
backend closes the socket when the handshake *fails* (``except Exception``), but not when the handshake is
*cancelled*, and the connection object that would own the socket has not been created yet. A handshake
is cancelled whenever a deadline fires during it (our per-request ``fail_after``, the poller's timeout) or
a sibling request of the same poll fails first (the plugin reads resources concurrently in one task
group, which then cancels the others). Each time one socket was left to the garbage collector: an open
file descriptor until then and a ``ResourceWarning`` after. Upstream knows the pattern
(encode/httpcore#443); until it closes on every exit, the stream returned by :class:`ClosingBackend`
closes the plain socket itself when ``start_tls`` leaves by any exception, cancellation included.

Everything else (connection pool, HTTP/1.1, exception mapping to ``httpx`` types) stays httpx's and
httpcore's own: :class:`SSCv2Transport` is :class:`httpx.AsyncHTTPTransport` with the pool rebuilt on
that backend.
"""

from __future__ import annotations

import ssl
from typing import Any

import anyio
import httpcore
import httpx


class _ClosingStream(httpcore.AsyncNetworkStream):
    """A plain TCP stream whose ``start_tls`` closes it on every way out but success."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore API
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore API
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore API
    ) -> httpcore.AsyncNetworkStream:
        try:
            return await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            # Closing a plain socket aborts the transport at once, so shielding it cannot hang; closing
            # twice (after httpcore's own close on a failed handshake) is harmless.
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class ClosingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, with connections wrapped in :class:`_ClosingStream`."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore API
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _ClosingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class SSCv2Transport(httpx.AsyncHTTPTransport):
    """:class:`httpx.AsyncHTTPTransport` (HTTP/1.1, no proxy, no environment) over :class:`ClosingBackend`."""

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, http1=True, http2=False, limits=limits, trust_env=False)
        # httpx builds its pool without a way to pass a network backend; rebuild it with the same
        # settings. Checked, so a future httpx that keeps its pool elsewhere fails loudly here instead of
        # silently bringing the leak back.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport no longer keeps its pool in _pool; update SSCv2Transport")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=ClosingBackend(),
        )
