"""A tiny JSON-over-HTTP "receiver" on loopback: the device the example plugin (docs/plugin-example) polls."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO / "docs" / "plugin-example"


def status_document() -> dict[str, Any]:
    """What the example device reports: two linked transmitters (one with an unknown battery) and one off."""
    return {
        "model": "EX2",
        "firmware": "1.2.0",
        "serial": "EX0001",
        "channels": [
            {"name": "Vox 1", "frequency_mhz": 566.125, "rf_dbm": -61.0, "transmitter": True,
             "battery_percent": 80, "muted": False},
            {"name": "Vox 2", "frequency_mhz": 570.5, "rf_dbm": -95.0, "transmitter": False},
            {"name": "Guitar", "frequency_mhz": 574.25, "rf_dbm": -70.5, "transmitter": True,
             "battery_percent": 255, "muted": True},
        ],
    }


@dataclass
class JsonDevice:
    """The device's state; tests change it while the server runs."""

    host: str = "127.0.0.1"
    port: int = 0
    status: dict[str, Any] = field(default_factory=status_document)
    token: str | None = None
    """Bearer token the device requires (None: no auth)."""
    raw_body: bytes | None = None
    """Answer this instead of the JSON document (a broken firmware)."""
    http_status: int = 200
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Authorization header) of every request seen."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(device: JsonDevice) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            with device.lock:
                device.requests.append((self.path, auth))
                if self.path != "/api/status":
                    status, body = 404, b'{"error": "not found"}'
                elif device.token is not None and auth != f"Bearer {device.token}":
                    status, body = 401, b'{"error": "unauthorized"}'
                else:
                    status = device.http_status
                    body = device.raw_body if device.raw_body is not None else json.dumps(device.status).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve_device() -> Iterator[JsonDevice]:
    """Run an example device on 127.0.0.1 and an ephemeral port."""
    device = JsonDevice()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(device))
    server.daemon_threads = True
    device.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="json-device", daemon=True)
    thread.start()
    try:
        yield device
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
