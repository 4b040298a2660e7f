"""HTTP endpoints, served from a thread pool next to the event loop.

``/metrics`` joins pre-rendered text (no device I/O on the scrape path) and gzips it when asked;
``/probe`` and ``POST /-/reload`` run on the event loop through the exporter's blocking portal. Unknown paths
get 404, known paths with the wrong method 405 with an ``Allow`` header.
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from micboard_exporter.exposition import CONTENT_TYPE
from micboard_exporter.landing import render_landing
from micboard_exporter.probe import ProbeRequestError, check_request, probe_budget, run_probe

if TYPE_CHECKING:
    from micboard_exporter.app import Exporter

log = logging.getLogger(__name__)

#: Seconds a client may take to send its request (slow clients must not hold a thread forever).
REQUEST_TIMEOUT_S = 30.0
#: Concurrent /metrics and /probe requests; more get 503 (like promhttp's MaxRequestsInFlight).
MAX_CONCURRENT_SCRAPES = 16
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bind the port even while an old process' connections linger in TIME_WAIT (restarts).
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], exporter: Exporter) -> None:
        self.exporter = exporter
        self.scrape_slots = threading.BoundedSemaphore(MAX_CONCURRENT_SCRAPES)
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "micboard-exporter"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # --------------------------------------------------------------------------- plumbing

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        use_gzip = (
            len(body) >= _GZIP_MIN_BYTES and "gzip" in self.headers.get("Accept-Encoding", "").lower()
        )
        if use_gzip:
            body = gzip.compress(body, compresslevel=1)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if use_gzip:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, message: str) -> None:
        self._send(status, (message.rstrip("\n") + "\n").encode("utf-8"))

    def _dispatch(self) -> None:
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
            body = exporter.store.scrape_bytes() + exporter.metrics.render()
            self._send(HTTPStatus.OK, body, CONTENT_TYPE)
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

    def __init__(self, exporter: Exporter, listen: str) -> None:
        host, port = parse_listen(listen)
        if host == "":
            host = "0.0.0.0"
        self._server = _Server((host, port), exporter)
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
        return f"http://{shown}:{self.port}/"

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
