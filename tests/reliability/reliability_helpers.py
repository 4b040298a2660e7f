"""Helpers for fault injection, reload safety and soak: an in-process exporter, scraping, resource counts,
and a fault proxy that sits between the exporter and a simulator.

The proxy passes bytes through (TLS included, end to end) until told to misbehave, so "the fault clears"
means the very same device config reaches the very same simulator again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
from anyio.streams.tls import TLSStream
from prometheus_client.parser import text_string_to_metric_families

from micboard_exporter.app import Exporter
from micboard_exporter.registry import PluginRegistry
from micboard_exporter.simulators.sennheiser_sscv2 import make_self_signed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """``{(name, sorted labels): value}`` for every sample of a scrape."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when it is absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


@asynccontextmanager
async def exporter_running(config_text: str, folder: Path, *, wait_ready: bool = True
                           ) -> AsyncIterator[tuple[Exporter, httpx.AsyncClient, Path]]:
    """The real plugins (entry points) in an exporter on 127.0.0.1:0; yields it, a client and the config path."""
    path = folder / "config.yaml"
    path.write_text(config_text, encoding="utf-8")
    exporter = Exporter(path, PluginRegistry.discover(), listen="127.0.0.1:0", environ=dict(os.environ))
    async with anyio.create_task_group() as tg:
        await exporter.apply(exporter.load())
        await tg.start(lambda task_status: exporter.run(handle_signals=False, task_status=task_status))
        assert exporter.http is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{exporter.http.port}", timeout=10,
                                     trust_env=False) as client:
            if wait_ready:
                with anyio.fail_after(15):
                    while not exporter.store.ready:
                        await anyio.sleep(0.02)
            yield exporter, client, path
        tg.cancel_scope.cancel()


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Scrape /metrics and parse it."""
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    return parse_metrics(r.text)


# ----------------------------------------------------------------------------------------- resources


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    """Resident set size now."""
    return _status_kb("VmRSS") * 1024


def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field_name} not in /proc/self/status")


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """Measure the peak RSS growth inside the block: yields a list that holds it (bytes) afterwards.

    Resets the kernel's high-water mark first (``clear_refs`` 5) so the peak is this block's own.
    """
    before = rss_bytes()
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    result: list[int] = []
    try:
        yield result
    finally:
        result.append(_status_kb("VmHWM") * 1024 - before)


def running_tasks() -> int:
    """asyncio tasks alive on the current loop."""
    return len(asyncio.all_tasks())


# ----------------------------------------------------------------------------------------- fault proxy


@dataclass
class FaultProxy:
    """A TCP proxy to ``upstream`` that can turn into a misbehaving device.

    Modes (looked at for each new connection; switching also drops the open ones):

    - ``pass``: forward bytes both ways (TLS stays end to end with the simulator);
    - ``refuse``: close every connection right after accepting it (a device going away);
    - ``flood``: send ``flood_prefix`` then ``flood_bytes`` bytes with no frame end, and keep the connection open;
    - ``not-tls``: answer the client's first bytes (its ClientHello) with plain text and close;
    - ``http-500`` / ``http-429`` / ``http-huge``: terminate TLS with a throw-away certificate and answer every
      request with 500, with 429 and ``Retry-After: {retry_after}``, or with a ``huge_bytes`` JSON body
      generated lazily in chunks (never held in memory) until the client gives up.
    """

    upstream_port: int
    upstream_host: str = "127.0.0.1"
    mode: str = "pass"
    flood_prefix: bytes = b"< REP 1 CHAN_NAME {"
    flood_bytes: int = 1 << 20
    huge_bytes: int = 50 * 1024 * 1024
    retry_after: str = "30"
    port: int = 0
    connections: int = 0
    requests: int = 0
    huge_sent: int = 0
    _generation: int = 0
    _tls: ssl.SSLContext | None = None
    _tasks: list[Any] = field(default_factory=list)

    def set_mode(self, mode: str) -> None:
        """Switch behaviour; connections opened under the old mode are closed."""
        self.mode = mode
        self._generation += 1

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Listen on 127.0.0.1:0 until cancelled."""
        cert, key = await anyio.to_thread.run_sync(make_self_signed, "127.0.0.1")
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "c.pem").write_bytes(cert)
            (Path(folder) / "k.pem").write_bytes(key)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(Path(folder) / "c.pem", Path(folder) / "k.pem")
            self._tls = ctx
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))  # noqa: S610 - anyio attribute
        task_status.started()
        async with listener:
            await listener.serve(self._handle)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.connections += 1
        generation = self._generation
        async with client, anyio.create_task_group() as tg:
            tg.start_soon(self._watch_generation, generation, tg.cancel_scope)
            # A client going away mid-fault is the normal end of a faulty connection.
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError,
                          ssl.SSLError, anyio.IncompleteRead, anyio.DelimiterNotFound):
                await self._serve_mode(client)
            tg.cancel_scope.cancel()

    async def _watch_generation(self, generation: int, scope: anyio.CancelScope) -> None:
        while self._generation == generation:
            await anyio.sleep(0.05)
        scope.cancel()

    async def _serve_mode(self, client: anyio.abc.SocketStream) -> None:
        mode = self.mode
        if mode == "pass":
            async with await anyio.connect_tcp(self.upstream_host, self.upstream_port) as up, \
                    anyio.create_task_group() as tg:
                tg.start_soon(_pipe, client, up, tg.cancel_scope)
                await _pipe(up, client, tg.cancel_scope)
        elif mode == "refuse":
            return
        elif mode == "flood":
            await client.send(self.flood_prefix)
            chunk = b"x" * 65536
            sent = 0
            while sent < self.flood_bytes:
                await client.send(chunk[: self.flood_bytes - sent])
                sent += len(chunk)
            async for _ in client:  # keep it open; swallow whatever the client sends
                pass
        elif mode == "not-tls":
            await client.receive()
            await client.send(b"HTTP/1.0 400 Bad Request\r\n\r\nthis port does not speak TLS\r\n")
        else:
            assert self._tls is not None
            tls = await TLSStream.wrap(client, server_side=True, ssl_context=self._tls, standard_compatible=False)
            buffered = _Buffered(tls)
            while True:
                await buffered.read_head()
                self.requests += 1
                if mode == "http-500":
                    await tls.send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!")
                elif mode == "http-429":
                    await tls.send(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: %s\r\nContent-Length: 0\r\n\r\n"
                                   % self.retry_after.encode())
                else:
                    await tls.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n")
                    piece = b"[" + b"1," * 32767 + b"1]"
                    sent = 0
                    while sent < self.huge_bytes:
                        await tls.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                        sent += len(piece)
                        self.huge_sent = max(self.huge_sent, sent)
                    await tls.send(b"0\r\n\r\n")


class _Buffered:
    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._buffer = b""

    async def read_head(self) -> bytes:
        while b"\r\n\r\n" not in self._buffer:
            data = await self._stream.receive()
            self._buffer += data
            if len(self._buffer) > 65536:
                raise anyio.DelimiterNotFound(65536)
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        # Bodies (PUT/DELETE of subscriptions) are small: drop what came with the head.
        self._buffer = b""
        return head


async def _pipe(src: anyio.abc.ByteReceiveStream, dst: anyio.abc.ByteSendStream, scope: anyio.CancelScope) -> None:
    try:
        async for data in src:
            await dst.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    scope.cancel()


# ----------------------------------------------------------------------------------------- DNS guard


def fake_resolver(real: Any) -> Any:
    """``socket.getaddrinfo`` that answers ``.invalid`` names NXDOMAIN at once (RFC 6761: they never resolve)
    and fails the test for any other name than loopback ones, so no query can leave the machine."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii") if isinstance(host, bytes) else host
        if isinstance(name, str) and name.rstrip(".").lower().endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if isinstance(name, str) and name not in ("localhost", "") and not _is_literal(name):
            raise AssertionError(f"test tried to resolve {name!r} (only loopback literals and .invalid allowed)")
        return real(host, port, *args, **kwargs)

    return getaddrinfo


def _is_literal(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return True
