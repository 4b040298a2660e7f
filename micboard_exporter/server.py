"""HTTP endpoints, served from a thread per connection next to the event loop.

``/metrics`` joins pre-rendered text (no device I/O on the scrape path) and gzips it when asked;
``/probe`` and ``POST /-/reload`` run on the event loop through the exporter's blocking portal. Unknown paths
get 404, known paths with the wrong method 405 with an ``Allow`` header.

Hardening (see ``docs/security.md``):

- TLS, basic auth and extra response headers come from ``--web.config.file``
  (:mod:`micboard_exporter.webconfig`). The TLS handshake runs in the connection's own thread with a
  deadline, so a client that never finishes it cannot block the accept loop. Basic auth guards every path,
  ``/-/healthy`` included, as the exporter-toolkit does.
- A request's line and headers must arrive within :data:`REQUEST_HEAD_TIMEOUT_S` of its first byte, however
  slowly they drip (a per-``recv`` timeout alone lets a client sending a byte every few seconds hold a
  thread forever); the request line is capped at :data:`MAX_REQUEST_LINE` bytes (414) and the header block
  at :data:`MAX_HEADER_BYTES` (431).
- At most :data:`MAX_CONNECTIONS` connections are served at once (each holds a thread); more are closed at
  once. ``/metrics`` and ``/probe`` share :data:`MAX_CONCURRENT_SCRAPES` slots; more get 503.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import socket
import ssl
import sys
import threading
import time
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from micboard_exporter.exposition import CONTENT_TYPE
from micboard_exporter.landing import render_landing
from micboard_exporter.probe import ProbeRequestError, check_request, probe_budget, run_probe
from micboard_exporter.webconfig import WebConfigWatcher

#: Pre-rendered parts joined per socket write (about a megabyte of /metrics text).
_WRITE_BATCH = 4096


def _gzip_parts(parts: list[bytes]) -> bytes:
    """Gzip (level 1: scrapes are frequent and loopback or LAN is fast) without joining the parts first."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [
        compressor.compress(b"".join(parts[start : start + _WRITE_BATCH]))
        for start in range(0, len(parts), _WRITE_BATCH)
    ]
    out.append(compressor.flush())
    return b"".join(out)


if TYPE_CHECKING:
    from micboard_exporter.app import Exporter

log = logging.getLogger(__name__)

#: Seconds a single read or write may block, and how long an idle keep-alive connection is kept.
REQUEST_TIMEOUT_S = 30.0
#: Seconds from a request's first byte until its last header line (slowloris: a dripping client is cut off).
REQUEST_HEAD_TIMEOUT_S = 10.0
#: Seconds a client may take to complete the TLS handshake.
TLS_HANDSHAKE_TIMEOUT_S = 10.0
#: Longest request line (method, path with query, version); longer gets 414.
MAX_REQUEST_LINE = 8192
#: Largest header block (all header lines together); larger gets 431.
MAX_HEADER_BYTES = 16384
#: Concurrent /metrics and /probe requests; more get 503 (like promhttp's MaxRequestsInFlight).
MAX_CONCURRENT_SCRAPES = 16
#: Connections served at once (one thread each); more are closed right after accept.
MAX_CONNECTIONS = 64
_GZIP_MIN_BYTES = 1024

_ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("GET", "HEAD"),
    "/metrics": ("GET", "HEAD"),
    "/probe": ("GET", "HEAD"),
    "/-/healthy": ("GET", "HEAD"),
    "/-/ready": ("GET", "HEAD"),
    "/-/reload": ("POST", "PUT"),
}


def parse_listen(listen: str) -> tuple[str, int]:
    """``":9798"`` → ``("", 9798)``; ``"[::1]:9798"`` → ``("::1", 9798)``; ``"127.0.0.1:0"`` → ephemeral."""
    host, _, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class _DeadlineReader(io.RawIOBase):
    """The connection's read side, with a deadline for the request head on top of the per-read timeout.

    Between requests a read may wait :data:`REQUEST_TIMEOUT_S` (keep-alive idle). Once the first byte of a
    request arrives, every further read is bounded by what is left of :data:`REQUEST_HEAD_TIMEOUT_S`, so
    the head as a whole has a deadline no matter how slowly it arrives.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._deadline: float | None = None
        self._arming = False

    def await_request(self) -> None:
        """The next byte starts a request: arm the head deadline when it arrives."""
        self._arming = True
        self._deadline = None

    def head_done(self) -> None:
        """The head is in: back to the plain per-read timeout (bodies are not read)."""
        self._arming = False
        self._deadline = None

    def readable(self) -> bool:
        """Always: this is the read side."""
        return True

    def readinto(self, buffer: Any) -> int:
        """One ``recv_into`` bounded by the idle timeout or by what is left of the head deadline."""
        timeout = REQUEST_TIMEOUT_S
        if self._deadline is not None:
            timeout = self._deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError(f"request head not complete within {REQUEST_HEAD_TIMEOUT_S:g} s")
        self._sock.settimeout(timeout)
        n = self._sock.recv_into(buffer)
        if n and self._arming and self._deadline is None:
            self._deadline = time.monotonic() + REQUEST_HEAD_TIMEOUT_S
        return n


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bind the port even while an old process' connections linger in TIME_WAIT (restarts).
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], exporter: Exporter, web: WebConfigWatcher) -> None:
        self.exporter = exporter
        self.web = web
        self.scrape_slots = threading.BoundedSemaphore(MAX_CONCURRENT_SCRAPES)
        self.connection_slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs on the accept thread, so it must never block: over the limit, the connection is dropped at once.
        if not self.connection_slots.acquire(blocking=False):
            log.warning("connection from %s refused: %d connections already open", client_address[0],
                        MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connection_slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        conn = request
        try:
            context = self.web.config.ssl_context
            if context is not None:
                # The handshake runs here, in the connection's thread, with a deadline of its own.
                request.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
                try:
                    conn = context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
                    return
            self.finish_request(conn, client_address)
        except Exception:  # one broken connection must not end the server
            log.debug("connection from %s ended with an error", client_address[0], exc_info=True)
        finally:
            self.shutdown_request(conn)
            self.connection_slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a traceback to stderr; a client's misbehaviour is not worth more than debug.
        log.debug("error serving %s: %s", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "micboard-exporter"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def handle_one_request(self) -> None:
        """Read one request within the size and time limits, then dispatch it."""
        try:
            self._reader.await_request()
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if not line:
                self.close_connection = True
                return
            if len(line) > MAX_REQUEST_LINE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, f"request line longer than {MAX_REQUEST_LINE} bytes")
                return
            head = bytearray()
            while True:
                header_line = self.rfile.readline(MAX_HEADER_BYTES + 1 - len(head))
                if not header_line:
                    self.close_connection = True
                    return
                head += header_line
                if header_line in (b"\r\n", b"\n"):
                    break
                if len(head) > MAX_HEADER_BYTES:
                    self.requestline = line.decode("latin-1").rstrip("\r\n")
                    self.request_version = self.command = ""
                    self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                                    f"headers larger than {MAX_HEADER_BYTES} bytes")
                    return
            self._reader.head_done()
            self.raw_requestline = line
            # parse_request reads the headers from rfile: hand it the block already read within the limits.
            connection_rfile, self.rfile = self.rfile, io.BufferedReader(io.BytesIO(bytes(head)))
            try:
                if not self.parse_request():
                    return
            finally:
                self.rfile = connection_rfile
            if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
                # No endpoint reads a body; closing afterwards keeps its bytes from being taken for a request.
                self.close_connection = True
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {self.command!r}")
                return
            method()
            self.wfile.flush()
        except TimeoutError as exc:
            log.debug("%s: %s", self.client_address[0], exc)
            self.close_connection = True

    def end_headers(self) -> None:
        """Add the web config's headers to every response, errors included."""
        for name, value in self.server.web.config.headers.items():
            self.send_header(name, value)
        super().end_headers()

    def _authorized(self) -> bool:
        auth = self.server.web.auth
        if not auth.enabled:
            return True
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        user = password = None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, sep, password = decoded.partition(":")
            if not sep:
                user = password = None
        # A missing or malformed header costs the same bcrypt work as a wrong password: no shortcut to time.
        if auth.check(user or "", password or "") and user is not None:
            return True
        self.close_connection = True
        self._send(HTTPStatus.UNAUTHORIZED, b"Unauthorized\n",
                   headers={"WWW-Authenticate": 'Basic realm="micboard-exporter", charset="UTF-8"'})
        return False


    # --------------------------------------------------------------------------- plumbing

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self._send_parts(status, [body], content_type, headers)

    def _send_parts(self, status: int, parts: list[bytes], content_type: str = "text/plain; charset=utf-8",
                    headers: dict[str, str] | None = None) -> None:
        """Answer with the concatenation of ``parts``, gzipped when the client asks and it is worth it."""
        length = sum(map(len, parts))
        use_gzip = length >= _GZIP_MIN_BYTES and "gzip" in self.headers.get("Accept-Encoding", "").lower()
        if use_gzip:
            parts = [_gzip_parts(parts)]
            length = len(parts[0])
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        if use_gzip:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self._write_parts(parts)

    def _write_parts(self, parts: list[bytes]) -> None:
        # A /metrics body is tens of thousands of pre-rendered chunks. Joining all of them first would copy
        # tens of megabytes into one fresh buffer; sendmsg() over hundreds of tiny buffers is slower still.
        # Batches of a few thousand parts (about a megabyte) keep both the copy and the syscalls cheap.
        for start in range(0, len(parts), _WRITE_BATCH):
            self.wfile.write(b"".join(parts[start : start + _WRITE_BATCH]))

    def _text(self, status: int, message: str) -> None:
        self._send(status, (message.rstrip("\n") + "\n").encode("utf-8"))

    def _dispatch(self) -> None:
        if not self._authorized():
            return
        url = urlsplit(self.path)
        allowed = _ROUTES.get(url.path)
        if allowed is None:
            self._text(HTTPStatus.NOT_FOUND, f"404 page not found: {url.path}")
            return
        if self.command not in allowed:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED,
                       f"method {self.command} not allowed; use {', '.join(allowed)}\n".encode(),
                       headers={"Allow": ", ".join(allowed)})
            return
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            if url.path == "/metrics":
                self._metrics()
            elif url.path == "/probe":
                self._probe(query)
            elif url.path == "/":
                self._landing()
            elif url.path == "/-/healthy":
                self._text(HTTPStatus.OK, "Healthy")
            elif url.path == "/-/ready":
                ready = self.server.exporter.store.ready
                self._text(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                           "Ready" if ready else "Not ready: the first poll cycle has not finished")
            else:
                self._reload()
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away during %s %s", self.command, url.path)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    # --------------------------------------------------------------------------- endpoints

    def _metrics(self) -> None:
        if not self.server.scrape_slots.acquire(blocking=False):
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "Limit of concurrent requests reached, try again later")
            return
        try:
            exporter = self.server.exporter
            parts = exporter.store.scrape_parts()
            parts.append(exporter.metrics.render())
            self._send_parts(HTTPStatus.OK, parts, CONTENT_TYPE)
        finally:
            self.server.scrape_slots.release()

    def _probe(self, query: dict[str, list[str]]) -> None:
        exporter = self.server.exporter
        config, portal = exporter.config, exporter.portal
        if config is None or portal is None:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "not ready")
            return
        if not self.server.scrape_slots.acquire(blocking=False):
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "Limit of concurrent requests reached, try again later")
            return
        try:
            for name in ("target", "plugin"):
                if len(query.get(name, [])) > 1:
                    raise ProbeRequestError(400, f"parameter {name!r} given more than once")
            target = check_request(config, exporter.registry, _first(query, "target"), _first(query, "plugin"))
            plugin = query["plugin"][0]
            budget = probe_budget(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"),
                                  config.probe.timeout_offset)
            body = portal.call(run_probe, config, exporter.registry, target, plugin, budget)
            self._send(HTTPStatus.OK, body.encode("utf-8"), CONTENT_TYPE)
        except ProbeRequestError as exc:
            self._text(exc.status, str(exc))
        finally:
            self.server.scrape_slots.release()

    def _landing(self) -> None:
        exporter = self.server.exporter
        page = render_landing(
            exporter.store.devices(),
            list(exporter.store.recent_events),
            config_path=exporter.config_path,
            started_at=exporter.started_at,
            ready=exporter.store.ready,
            probe_enabled=bool(exporter.config and exporter.config.probe.enabled),
        )
        self._send(HTTPStatus.OK, page.encode("utf-8"), "text/html; charset=utf-8")

    def _reload(self) -> None:
        exporter = self.server.exporter
        portal = exporter.portal
        if portal is None:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "not running")
            return
        outcome = portal.call(exporter.reload)
        self._text(HTTPStatus.OK if outcome.ok else HTTPStatus.INTERNAL_SERVER_ERROR, outcome.message)


class HttpServer:
    """The exporter's HTTP server on its own thread."""

    def __init__(self, exporter: Exporter, listen: str, web: WebConfigWatcher | None = None) -> None:
        host, port = parse_listen(listen)
        if host == "":
            host = "0.0.0.0"
        self.web = web or WebConfigWatcher(None)
        self._server = _Server((host, port), exporter, self.web)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for messages."""
        host = str(self._server.server_address[0])
        shown = "localhost" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
        scheme = "https" if self.web.config.tls is not None else "http"
        return f"{scheme}://{shown}:{self.port}/"

    def start(self) -> None:
        """Start serving on the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if it started) and close the socket."""
        if self._thread.is_alive():
            # shutdown() waits for serve_forever to return, so only call it when it is running.
            self._server.shutdown()
            self._thread.join(timeout=5.0)
        self._server.server_close()
