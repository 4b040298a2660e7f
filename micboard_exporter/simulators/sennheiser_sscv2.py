"""Simulated Sennheiser SSCv2 devices: an EW-DX receiver and a Spectera base station over HTTPS with SSE.

Written from ``shared/reference/sennheiser-protocols.md`` §1 without the plugin's codec: its own small
HTTP/1.1 server (keep-alive, chunked event stream) on TLS with a self-signed certificate made at start-up
with ``cryptography``. It answers the documented status codes: 401 without valid Basic credentials, 404 for
unknown paths and channels, 422 for transmitter resources while no transmitter is linked and for unknown
subscription sessions, 400 ``{"path", "error"}`` for refused subscription paths.

Subscriptions follow §1.6: ``GET /api/ssc/state/subscriptions`` opens the stream and sends ``event:open``
with the session UUID; ``PUT …/{uuid}`` (``/add``, ``/remove``) sets the paths; every :meth:`changed` sends
one event with the resources whose representation changed; ``DELETE …/{uuid}`` ends the stream.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import math
import shutil
import ssl
import tempfile
import uuid as uuidlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import anyio
from anyio.abc import SocketAttribute, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.tls import TLSStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from micboard_exporter.simulators import ewdx
from micboard_exporter.simulators.base import SimulatedDevice
from micboard_exporter.simulators.physics import ChannelPhysics

DEFAULT_PASSWORD: Final = "Micboard-Sim1!"  # noqa: S105 - the simulator's documented demo password
SUBSCRIPTIONS: Final = "/api/ssc/state/subscriptions"
_MAX_HEADER: Final = 16 * 1024
#: Sessions the simulated device holds at once (the real limit is not published).
SESSION_TABLE_SIZE: Final = 16
_REASONS: Final = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                   405: "Method Not Allowed", 422: "Unprocessable Entity", 500: "Internal Server Error"}
_DROP: Final = b""  # queued to an event stream: cut the connection without a final chunk


class _Close(Exception):
    """End this connection now (fault injection or client gone)."""


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Subscription:
    uuid: str
    send: MemoryObjectSendStream[bytes]
    paths: list[str] = field(default_factory=list)
    sent: dict[str, Any] = field(default_factory=dict)
    streaming: bool = True
    """Whether the session's event-stream connection is still open."""


def make_self_signed(host: str) -> tuple[bytes, bytes]:
    """A fresh P-256 key and a self-signed certificate for ``host`` (and ``localhost``), PEM encoded."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Sennheiser simulator {host}")])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alt.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class SennheiserEwdxSimulator(SimulatedDevice):
    """An EW-DX EM 2 / EM 4 receiver in third-party mode "Secure" (SSCv2).

    Options: ``password`` (default :data:`DEFAULT_PASSWORD`), ``username`` (``api``), ``firmware``,
    ``sse_space`` (write ``data: `` instead of the OpenAPI example's ``data:``), ``sse_split_data``
    (spread each event's JSON over several ``data`` lines).
    """

    kind: ClassVar[str] = "sennheiser-ewdx"
    plugin: ClassVar[str] = "sennheiser-sscv2"
    default_model: ClassVar[str] = "EWDX4CHDS"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"EWDX2CHS": 2, "EWDX2CHDS": 2, "EWDX4CHDS": 4}
    serial: ClassVar[str] = "1023456789"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.username = str(self.options.get("username", self._default_username()))
        self.password = str(self.options.get("password", DEFAULT_PASSWORD))
        self.firmware = str(self.options.get("firmware", "3.0.3"))
        self.certificate_pem = b""
        self.password_file: Path | None = None
        self.requests: deque[tuple[str, str]] = deque(maxlen=self.record_limit)
        """The most recent requests as (method, path), in order."""
        self.streams_opened = 0
        self.sessions_deleted: deque[str] = deque(maxlen=self.record_limit)
        self._subs: dict[str, _Subscription] = {}
        self._clip_reported: set[int] = set()

    @staticmethod
    def _default_username() -> str:
        return "api"

    # ---------------------------------------------------------------- public test helpers

    @property
    def active_sessions(self) -> list[str]:
        """UUIDs of subscription sessions the device currently holds."""
        return list(self._subs)

    def write_ca(self, directory: str | Path | None = None) -> Path:
        """Write the certificate (its own CA) to a PEM file and return the path, for ``ca_file``."""
        folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="ewdx-sim-"))
        path = folder / f"{self.kind}-{self.host}-{self.port}.pem"
        path.write_bytes(self.certificate_pem)
        return path

    def drop_streams(self) -> None:
        """Cut every event-stream connection abruptly (no close event), as a network glitch would."""
        for sub in list(self._subs.values()):
            self._queue(sub, _DROP)

    def exporter_device(self, device_id: str) -> dict[str, Any]:
        """A ``devices:`` entry: the self-signed certificate is not verified; the password comes from a file
        the simulator wrote at start-up (secrets never go into a config file)."""
        entry = super().exporter_device(device_id)
        options: dict[str, Any] = {"verify_tls": False, "username": self.username}
        if self.password_file is not None:
            options["password_file"] = str(self.password_file)
        entry["options"] = options
        return entry

    # ---------------------------------------------------------------- serving

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Make a certificate, bind, report the port, and serve HTTPS until cancelled."""
        cert_pem, key_pem = await anyio.to_thread.run_sync(make_self_signed, self.host)
        self.certificate_pem = cert_pem
        context = await anyio.to_thread.run_sync(self._tls_context, cert_pem, key_pem)
        self.password_file = await anyio.to_thread.run_sync(self._write_password)
        try:
            listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
            self.port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - anyio typed attribute, not Django
            async with listener, anyio.create_task_group() as tg:
                task_status.started()

                async def handle(stream: Any) -> None:
                    await self._connection(stream, context)

                await listener.serve(handle, tg)
        finally:
            folder, self.password_file = self.password_file.parent, None
            shutil.rmtree(folder, ignore_errors=True)

    def _write_password(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"{self.kind}-"))
        path = folder / "password"
        path.write_text(self.password + "\n")
        path.chmod(0o600)
        return path

    @staticmethod
    def _tls_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(cert_pem)
            key.write_bytes(key_pem)
            context.load_cert_chain(cert, key)
        return context

    async def _connection(self, tcp: Any, context: ssl.SSLContext) -> None:
        async with tcp:
            if self.faults.refuse:
                return
            try:
                tls = await TLSStream.wrap(tcp, server_side=True, ssl_context=context, standard_compatible=False)
            except (ssl.SSLError, OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                return
            reader = BufferedByteReceiveStream(tls)
            try:
                while True:
                    request = await self._read_request(reader)
                    if request is None or self.faults.refuse:
                        return  # a device that went away drops kept-alive connections too
                    if self.faults.stall:
                        # Never answer, but notice the client giving up: read (and ignore) until it closes.
                        while True:
                            await reader.receive()
                    if not await self._dispatch(request, tls):
                        return
            except (_Close, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream,
                    anyio.IncompleteRead, anyio.DelimiterNotFound, ssl.SSLError, OSError):
                return

    async def _read_request(self, reader: BufferedByteReceiveStream) -> _Request | None:
        try:
            head = await reader.receive_until(b"\r\n\r\n", _MAX_HEADER)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.receive_exactly(length) if length else b""
        return _Request(method=method, path=target.split("?", 1)[0], headers=headers, body=body)

    async def _write(self, stream: Any, data: bytes) -> None:
        faults = self.faults
        if faults.garbage:
            data = bytes(self.rng.randrange(256) for _ in range(max(16, len(data) // 2)))
        if faults.close_mid_frame:
            await stream.send(data[: max(1, len(data) // 2)])
            raise _Close
        if faults.split_bytes or faults.drip_interval > 0:
            for i in range(len(data)):
                await stream.send(data[i : i + 1])
                if faults.drip_interval > 0:
                    await anyio.sleep(faults.drip_interval)
            return
        await stream.send(data)

    async def _respond(self, stream: Any, status: int, body: Any = None, *, raw: bytes | None = None,
                       extra: Mapping[str, str] | None = None) -> None:
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {len(payload)}"]
        if payload:
            head.append("Content-Type: application/json")
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        await self._write(stream, ("\r\n".join(head) + "\r\n\r\n").encode() + payload)

    def _authorized(self, request: _Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return user == self.username and password == self.password

    async def _dispatch(self, request: _Request, stream: Any) -> bool:
        """Answer one request; False ends the connection."""
        self.requests.append((request.method, request.path))
        path = request.path.rstrip("/") or "/"
        if request.method == "GET" and path in ("/api/ssc/version", "/api/device/identity"):
            await self._respond(stream, 200, self._public(path))
        elif not self._authorized(request):
            await self._respond(stream, 401, extra={"WWW-Authenticate": 'Basic realm="SSCv2"'})
        elif path == SUBSCRIPTIONS and request.method == "GET":
            await self._event_stream(stream)
            return False
        elif path.startswith(SUBSCRIPTIONS + "/"):
            await self._subscription_call(request, path, stream)
        elif request.method != "GET":
            await self._respond(stream, 405)
        else:
            status, body = self._resource(path)
            await self._respond(stream, status, body)
        return request.headers.get("connection", "").lower() != "close"

    def _public(self, path: str) -> Any:
        if path == "/api/ssc/version":
            return {"protocol": "2.3", "schema": "1.0"}
        return {"product": self.model, "hardwareRevision": "0596715-06", "serial": self.serial,
                "vendor": "Sennheiser electronic SE & Co. KG"}

    # ---------------------------------------------------------------- resources

    def _channel(self, index: str) -> ChannelPhysics | None:
        if not index.isdigit():
            return None
        i = int(index)
        return self.channels[i] if i < len(self.channels) else None

    def _resource(self, path: str) -> tuple[int, Any]:
        """(status, body) of a GET, and the value notifications carry (``None`` for status 422)."""
        parts = path.strip("/").split("/")
        if parts[:1] != ["api"]:
            return 404, None
        parts = parts[1:]
        if parts == ["device", "site"]:
            return 200, {"deviceName": "EWDXEM4", "location": "Simulated", "position": ""}
        if parts == ["device", "state"]:
            return 200, {"state": "Normal", "warnings": []}
        if parts == ["firmware", "update", "state"]:
            return 200, {"deviceVersion": self.firmware, "danteVersion": "4.2.1.3", "state": "Idle",
                         "progress": 0, "lastStatus": "None"}
        if parts == ["transmitters"]:
            return 200, [{"id": i, "transmitter": self._transmitter(c, i)}
                         for i, c in enumerate(self.channels) if c.link_up]
        if len(parts) >= 3 and parts[:2] == ["rf", "channels"] and len(parts) == 3:
            ch = self._channel(parts[2])
            if ch is None:
                return 404, None
            return 200, {"frequency": round(ch.frequency_hz / 1000), "presets": {"type": "None"}}
        if len(parts) in (2, 3) and parts[0] == "channel":
            ch = self._channel(parts[1])
            if ch is None:
                return 404, None
            return self._channel_resource(int(parts[1]), ch, parts[2] if len(parts) == 3 else "")
        if len(parts) in (2, 3) and parts[0] == "transmitters":
            ch = self._channel(parts[1])
            if ch is None:
                return 404, None
            if not ch.link_up:
                return 422, None
            sub = parts[2] if len(parts) == 3 else ""
            if sub == "":
                return 200, self._transmitter(ch, int(parts[1]))
            if sub == "battery":
                rechargeable = ch.battery_type == "LION"
                return 200, {"type": "Battery" if rechargeable else "PrimaryCell",
                             "lifetime": round(ch.runtime_s / 60), "gauge": round(ch.battery_ratio * 100)}
            if sub == "warnings":
                return 200, (["LowBattery"] if ch.battery_ratio < 0.15 else [])
        return 404, None

    def _transmitter(self, ch: ChannelPhysics, index: int) -> dict[str, Any]:
        kind = ch.transmitter_model if ch.transmitter_model.startswith("EW_") else (
            "EW_DX_SKM" if index % 2 == 0 else "EW_DX_SK")
        return {"type": kind, "capsule": "MMD_935" if "SKM" in kind else "None", "name": self._name(ch),
                "trim": 0, "lowcut": "80Hz", "led": True, "version": self.firmware, "lock": True,
                "mute": ch.muted, "identification": False}

    @staticmethod
    def _name(ch: ChannelPhysics) -> str:
        # Channel names are at most 8 upper-case characters on the device.
        return ch.name.upper()[:8]

    def _channel_resource(self, index: int, ch: ChannelPhysics, sub: str) -> tuple[int, Any]:
        if sub == "":
            return 200, {"name": self._name(ch), "mute": False, "mates": [f"TX{index + 1}"], "gain": 24,
                         "audio": [f"Out{index + 1}"], "outputLevel": 0, "eventCounter": 3}
        if sub == "warnings":
            if ch.clip_pending:
                self._clip_reported.add(index)
            return 200, ewdx.warnings(ch)
        if sub == "signalStrengthIndicator":
            # RSSI −107..0 dBm (the documented floor).
            return 200, {"value": round(max(-107.0, min(0.0, max(ch.received_dbm()))), 1)}
        if sub == "signalQualityIndicator":
            return 200, {"value": round(ch.link_quality_ratio() * 100)}
        if sub == "diversityIndicator":
            active = ch.active_antenna()
            return 200, {"value": 0 if active is None else active + 1}
        if sub == "level":
            level = ch.audio_rms_dbfs if ch.link_up and not ch.muted else -138.5
            return 200, {"value": round(max(-138.5, min(0.0, level)), 1)}
        return 404, None

    def _notify_values(self, path: str) -> dict[str, Any]:
        """What a subscription on ``path`` reports: ``{path: value}`` (``None`` = gone)."""
        status, body = self._resource(path)
        return {path: body if status == 200 else None}

    def _valid_subscription_path(self, path: str) -> bool:
        status, _ = self._resource(path)
        return status != 404

    # ---------------------------------------------------------------- subscriptions

    async def _event_stream(self, stream: Any) -> None:
        send, receive = anyio.create_memory_object_stream[bytes](1000)
        sub = _Subscription(uuid=str(uuidlib.uuid4()), send=send)
        self._evict_orphaned_sessions()
        self._subs[sub.uuid] = sub
        self.streams_opened += 1
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                f"Content-Location: {sub.uuid}\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            await self._write(stream, head.encode())
            opened = {"path": f"{SUBSCRIPTIONS}/{sub.uuid}", "sessionUUID": sub.uuid}
            await self._write(stream, _chunk(b"event:open\n" + self._data_lines(opened)))
            ended: Exception | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._end_when_client_leaves, stream, tg.cancel_scope)
                try:
                    await self._pump(stream, receive)
                except Exception as exc:  # noqa: BLE001 - re-raised below, outside the group that would wrap it
                    ended = exc
                tg.cancel_scope.cancel()
            if ended is not None:
                raise ended
        finally:
            # The session outlives its connection, as a resource of its own: only DELETE ends it (or, on a
            # full table, a new session: see _evict_orphaned_sessions).
            sub.streaming = False
            receive.close()
            send.close()

    def _evict_orphaned_sessions(self) -> None:
        """Make room for one more session on a full table by dropping the oldest sessions whose stream has
        closed. Devices limit sessions without publishing the number (reference §1.6), so the limit here is
        our choice; without one, every DELETE lost to a fault would stay in the table (and be re-evaluated on
        every change) for the life of the simulator."""
        orphaned = [uuid for uuid, sub in self._subs.items() if not sub.streaming]
        for uuid in orphaned[: max(0, len(self._subs) + 1 - SESSION_TABLE_SIZE)]:
            del self._subs[uuid]

    @staticmethod
    async def _end_when_client_leaves(stream: Any, scope: anyio.CancelScope) -> None:
        """Notice a client closing its event stream while no event is due (a quiet session would otherwise
        keep its connection until the next write failed, which may be never). A client sends nothing more on
        an event-stream connection, so anything read is ignored."""
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError,
                                 ssl.SSLError, OSError):
            while True:
                await stream.receive()
        scope.cancel()

    async def _pump(self, stream: Any, receive: MemoryObjectReceiveStream[bytes]) -> None:
        async for message in receive:
            if message == _DROP:
                raise _Close
            await self._write(stream, _chunk(message))
            if message.startswith(b"event:close"):
                await self._write(stream, b"0\r\n\r\n")
                return

    def _data_lines(self, obj: Any) -> bytes:
        text = json.dumps(obj, separators=(",", ":"))
        prefix = "data: " if self.options.get("sse_space") else "data:"
        if self.options.get("sse_split_data") and len(text) > 2:
            # JSON allows a newline between tokens: break after the first "{" to use two data lines.
            text = text[0] + "\n" + text[1:]
        return ("".join(f"{prefix}{line}\n" for line in text.split("\n")) + "\n").encode()

    def _queue(self, sub: _Subscription, message: bytes) -> None:
        # A stalled or gone client loses events, as on a real device.
        with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            sub.send.send_nowait(message)

    async def _subscription_call(self, request: _Request, path: str, stream: Any) -> None:
        rest = path[len(SUBSCRIPTIONS) + 1 :].split("/")
        sub = self._subs.get(rest[0])
        op = rest[1] if len(rest) > 1 else ""
        if sub is None:
            await self._respond(stream, 422)
            return
        if request.method == "GET" and op == "":
            await self._respond(stream, 200, sub.paths)
        elif request.method == "DELETE" and op == "":
            self.sessions_deleted.append(sub.uuid)
            self._queue(sub, b"event:close\n" + self._data_lines({}))
            self._subs.pop(sub.uuid, None)
            await self._respond(stream, 200)
        elif request.method == "PUT" and op in ("", "add", "remove"):
            try:
                paths = json.loads(request.body)
            except ValueError:
                await self._respond(stream, 400, {"path": path, "error": 400})
                return
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                await self._respond(stream, 400, {"path": path, "error": 400})
                return
            normalized = [p if p.startswith("/api/") else "/api" + ("" if p.startswith("/") else "/") + p
                          for p in paths]
            for original, p in zip(paths, normalized, strict=True):
                if op != "remove" and not self._valid_subscription_path(p):
                    await self._respond(stream, 400, {"path": original, "error": 404})
                    return
            if op == "":
                sub.paths = normalized
            elif op == "add":
                sub.paths += [p for p in normalized if p not in sub.paths]
            else:
                sub.paths = [p for p in sub.paths if p not in normalized]
            # Remember what the client has "seen" as of now: notifications carry changes only.
            sub.sent = {k: v for p in sub.paths for k, v in self._notify_values(p).items()}
            await self._respond(stream, 200)
        else:
            await self._respond(stream, 405)

    def changed(self) -> None:
        """Send one notification per session with every subscribed resource whose value changed."""
        for sub in list(self._subs.values()):
            current: dict[str, Any] = {}
            for p in sub.paths:
                current.update(self._notify_values(p))
            delta = {k: v for k, v in current.items() if sub.sent.get(k, math.nan) != v}
            for gone in set(sub.sent) - set(current):
                delta[gone] = None
            sub.sent = current
            if delta:
                self._queue(sub, self._data_lines(delta))
        # A clip is an event: once reported, it is over.
        for index in self._clip_reported:
            if index < len(self.channels):
                self.channels[index].clip_pending = False
        self._clip_reported.clear()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class SennheiserSpecteraSimulator(SennheiserEwdxSimulator):
    """A Spectera base station: paired mobile devices (SEK/SKM) under ``/api/mts/paired/all``.

    Each :class:`ChannelPhysics` is one paired mobile device. :meth:`unpair` removes one, which a
    subscription reports as ``null`` for its member path ([CMP-SPEC]).
    """

    kind: ClassVar[str] = "sennheiser-spectera"
    default_model: ClassVar[str] = "SPECTERA_BASE"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"SPECTERA_BASE": 6}
    serial: ClassVar[str] = "3000123456"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unpaired: set[int] = set()
        self.syncing: set[int] = set()

    @staticmethod
    def _default_username() -> str:
        # The Spectera Companion module authenticates as controlSennheiser ([CMP-SPEC] getAuthHeader).
        return "controlSennheiser"

    def unpair(self, index: int) -> None:
        """Remove mobile device ``index`` from the paired list and notify."""
        self.unpaired.add(index)
        self.changed()

    def _uid(self, index: int) -> str:
        return f"{0x5E0000 + index:08X}"

    def _mobile(self, index: int, ch: ChannelPhysics) -> dict[str, Any]:
        connected = ch.link_up
        active = ch.active_antenna()
        return {
            "mtUid": self._uid(index),
            "type": "SKM" if index % 2 == 0 else "SEK",
            "serial": "0000000000" if index in self.syncing else f"41{index:08d}",
            "name": ch.name,
            "state": "Connected" if connected else ("Sleeping" if ch.transmitter_on else "Disconnected"),
            "rfChannelId": index + 1,
            "batteryFillLevel": round(ch.battery_ratio * 100) if connected else -1,
            "batteryRuntime": round(ch.runtime_s / 60) if connected else -1,
            "batteryLow": ch.battery_ratio < 0.15,
            "rssi": round(max(ch.received_dbm()), 1),
            "micLqi": round(ch.link_quality_ratio() * 4),
            "iemLqi": round(ch.link_quality_ratio() * 4),
            "dominantAntenna": "NotAvailable" if active is None else "ABCD"[active],
            "interference": {"severity": "Mid" if ch.interference else "None"},
            "version": "1.4.1",
            "lastConnected": "2024-01-01T00:00:00Z",
        }

    def _paired(self) -> list[tuple[int, ChannelPhysics]]:
        return [(i, c) for i, c in enumerate(self.channels) if i not in self.unpaired]

    def _resource(self, path: str) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts == ["api", "mts", "paired", "all"]:
            return 200, [self._mobile(i, c) for i, c in self._paired()]
        if parts[:4] == ["api", "mts", "paired", "all"] and len(parts) == 5:
            for i, c in self._paired():
                if self._uid(i) == parts[4]:
                    return 200, self._mobile(i, c)
            return 404, None
        if parts == ["api", "rf", "channels"]:
            return 200, [{"id": i + 1, "frequency": round(c.frequency_hz / 1000), "txPower": 10,
                          "bandwidthMode": 6000, "rfState": "RfActive"} for i, c in enumerate(self.channels)]
        if parts == ["api", "device", "state"]:
            return 200, {"state": "Normal", "warnings": []}
        if parts == ["api", "device", "site"]:
            return 200, {"deviceName": "SPECTERA", "location": "Simulated", "position": ""}
        return 404, None

    def _notify_values(self, path: str) -> dict[str, Any]:
        # A collection subscription reports its members one path each ([CMP-SPEC] processInternalUpdate).
        if path.rstrip("/") == "/api/mts/paired/all":
            values: dict[str, Any] = {f"{path}/{self._uid(i)}": self._mobile(i, c) for i, c in self._paired()}
            return values
        return super()._notify_values(path)
