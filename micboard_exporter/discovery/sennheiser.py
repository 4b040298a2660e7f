"""Sennheiser probes: SSCv2 over HTTPS, SSC v1 over UDP 45, and MCP (ew G3/G4/2000) over UDP 53212.

Facts from ``shared/reference/sennheiser-protocols.md``: §1.2 (``/api/ssc/version`` and
``/api/device/identity`` need no authentication), §1.1 (devices present self-signed certificates: discovery
accepts them; the config it suggests does not silently turn verification off), §2.1–2.3 and §2.9 (SSC v1: one
JSON object per datagram, gets with ``null`` leaves, trailing CR/LF/NUL), §3.1, §3.4 and §3.8 (MCP answers
only datagrams from source port 53212; ``Push 0 0 1`` sends the configuration attributes once).
"""

from __future__ import annotations

import errno
import json
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.abc
import httpx

from micboard_exporter.discovery.outcome import Attempt, Found, Reason, os_error, reason_for
from micboard_exporter.plugins.sennheiser.sscv2.codec import EWDX_CHANNELS

SSCV2_PORT: Final = 443
SSC_PORT: Final = 45
MCP_PORT: Final = 53212
SSCV2: Final = "sscv2"
SSC: Final = "ssc"
MCP: Final = "mcp"
_MAX_BODY: Final = 16 * 1024
_MAX_DATAGRAM: Final = 65535

# --------------------------------------------------------------------------------------------- SSCv2


def sscv2_client(concurrency: int, reply_wait: float) -> httpx.AsyncClient:
    """One client for the whole scan. Certificates are not verified: devices ship self-signed ones and
    discovery only reads the two public identity resources; the suggested config keeps verification on."""
    return httpx.AsyncClient(
        verify=False,  # noqa: S501 - discovery of self-signed devices, public resources only (see docstring)
        timeout=httpx.Timeout(reply_wait),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=0),
        trust_env=False,  # a proxy must never see the AV network's scan
        follow_redirects=False,
    )


def _http_reason(exc: httpx.HTTPError) -> tuple[Reason, str]:
    if isinstance(exc, httpx.TimeoutException):
        return Reason.TIMEOUT, "no HTTPS answer in time"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return Reason.GARBAGE, f"TLS handshake failed: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return Reason.GARBAGE, f"not HTTP: {exc}"
    if os_error(exc) is not None:
        return reason_for(exc)
    return Reason.ERROR, str(exc) or type(exc).__name__


async def _get_json(client: httpx.AsyncClient, url: str) -> tuple[int, Any]:
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > _MAX_BODY:
                raise ValueError(f"{url}: answer larger than {_MAX_BODY} bytes")
        if response.status_code != httpx.codes.OK:
            return response.status_code, None
        return response.status_code, json.loads(body)


async def probe_sscv2(client: httpx.AsyncClient, host: str, port: int = SSCV2_PORT) -> Attempt:
    """``GET /api/ssc/version`` must give ``{"protocol": ...}``; ``/api/device/identity`` names the product."""
    base = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
    try:
        status, version = await _get_json(client, f"{base}/api/ssc/version")
        if version is None:
            return Attempt(host, SSCV2, Reason.REJECTED, f"HTTP {status} on /api/ssc/version: not SSCv2")
        if not isinstance(version, dict) or not isinstance(version.get("protocol"), str):
            return Attempt(host, SSCV2, Reason.GARBAGE, "/api/ssc/version is not an SSC version object")
        status, identity = await _get_json(client, f"{base}/api/device/identity")
    except httpx.HTTPError as exc:
        reason, detail = _http_reason(exc)
        return Attempt(host, SSCV2, reason, detail)
    except (ValueError, UnicodeDecodeError) as exc:
        return Attempt(host, SSCV2, Reason.GARBAGE, f"not JSON: {exc}")
    product = identity.get("product") if isinstance(identity, dict) else None
    serial = identity.get("serial") if isinstance(identity, dict) else None
    model = product if isinstance(product, str) and product else None
    channels = EWDX_CHANNELS.get(model or "")
    options: dict[str, Any] = {"family": "ewdx"} if channels is not None else {}
    notes = [
        "set the third-party password (Control Cockpit, access mode Secure): options.password_env or password_file",
        "the device certificate is self-signed: trust it with options.ca_file, or verify_tls: false on an "
        "isolated AV network (docs/devices/sennheiser.md)",
    ]
    if channels is None:
        notes.append(f"product {model!r} is not an EW-DX receiver; family auto tells EW-DX and Spectera apart")
    found = Found(host=host, port=port, protocol=SSCV2, plugin="sennheiser-sscv2", model=model,
                  family=options.get("family"), channels=channels,
                  name=None, evidence=f"SSC protocol {version['protocol']}"
                  + (f", product {model}" if model else "") + (f", serial {serial}" if serial else ""),
                  options=options, notes=tuple(notes))
    return Attempt(host, SSCV2, Reason.FOUND, found=found)


# --------------------------------------------------------------------------------------------- SSC v1

_IDENTITY_QUERY: Final = {"device": {"identity": {"product": None, "serial": None, "version": None}, "name": None}}


def _decode_ssc(data: bytes) -> Any:
    # Replies may end in CR LF, NUL (older SpeechLine) or nothing (§2.2).
    return json.loads(data.rstrip(b"\r\n\x00 \t").decode("latin-1"))


async def _ssc_ask(sock: anyio.abc.ConnectedUDPSocket, query: Any, reply_wait: float) -> Any:
    """The decoded answer to ``query``; ``TimeoutError`` when none; ``ValueError`` for non-JSON."""
    await sock.send(json.dumps(query, separators=(",", ":")).encode("ascii"))
    with anyio.fail_after(reply_wait):
        return _decode_ssc(await sock.receive())


def _leaf(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


async def probe_ssc(host: str, port: int = SSC_PORT, reply_wait: float = 0.75) -> Attempt:
    """An identity get on UDP 45; the answer must be JSON naming a product."""
    try:
        async with await anyio.create_connected_udp_socket(host, port) as sock:
            answer = await _ssc_ask(sock, _IDENTITY_QUERY, reply_wait)
            product = _leaf(answer, "device", "identity", "product")
            if not isinstance(product, str):
                if isinstance(_leaf(answer, "osc", "error"), list):
                    return Attempt(host, SSC, Reason.REJECTED, "answered an SSC error to the identity query")
                return Attempt(host, SSC, Reason.GARBAGE, "JSON without /device/identity/product")
            channels = await _ssc_channels(sock, reply_wait)
    except TimeoutError:
        return Attempt(host, SSC, Reason.TIMEOUT, f"no UDP answer within {reply_wait:g}s")
    except (ValueError, UnicodeDecodeError) as exc:
        return Attempt(host, SSC, Reason.GARBAGE, f"not SSC JSON: {exc}")
    except OSError as exc:
        reason, detail = reason_for(exc)
        return Attempt(host, SSC, reason, detail)
    name = _leaf(answer, "device", "name")
    version = _leaf(answer, "device", "identity", "version")
    found = Found(host=host, port=port, protocol=SSC, plugin="sennheiser-ssc", model=product, channels=channels,
                  name=name if isinstance(name, str) and name else None,
                  evidence=f"SSC v1 /device/identity/product {product!r}"
                  + (f", firmware {version}" if isinstance(version, str) else ""))
    return Attempt(host, SSC, Reason.FOUND, found=found)


async def _ssc_channels(sock: anyio.abc.ConnectedUDPSocket, reply_wait: float) -> int:
    # EW-DX product strings over SSC v1 are not documented (§6): ask for rx4, then rx2, by name, as the
    # plugin does. An unknown address answers an error (404), which is not a name.
    for count in (4, 2):
        try:
            answer = await _ssc_ask(sock, {f"rx{count}": {"name": None}}, reply_wait)
        except (TimeoutError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(_leaf(answer, f"rx{count}", "name"), str):
            return count
    return 1


# --------------------------------------------------------------------------------------------- MCP

# Lines a G3/G4/2000 receiver sends for Push 0 0 1 (TI1254 p.10-25, §3.3/§3.8). At least one must be there
# and every line must be printable ASCII, so an echo of our own probe or noise never counts.
_MCP_ATTRIBUTE: Final = re.compile(
    r"^(Name( .*)?|Frequency \d+ \d+ \d+|Squelch \d+|AfOut -?\d+|Equalizer \d|Mute [01]|FirmwareRevision [\d.]+)$"
)
_MCP_PROBE: Final = b"Push 0 0 1\r"


@dataclass
class McpReport:
    """How the MCP sweep went, for the summary."""

    bind: str
    port: int
    status: str = "not started"
    error: str | None = None


def mcp_socket(bind: str, port: int = MCP_PORT) -> socket.socket:
    """UDP ``(bind, port)`` with SO_REUSEADDR: MCP devices answer only to source port 53212, and simulators
    (or another program) may hold the same port on other local addresses."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind((bind, port))
    except OSError:
        sock.close()
        raise
    return sock


def local_address_towards(host: str) -> str:
    """The local address the routing table picks for ``host`` (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, MCP_PORT))
        return str(probe.getsockname()[0])


def _parse_mcp(lines: list[str]) -> tuple[bool, str | None, str | None]:
    """(is a device, name, firmware) from the lines one host sent."""
    text_lines = [line.strip() for line in lines if line.strip()]
    if not text_lines or not all(line.isascii() and line.isprintable() for line in text_lines):
        return False, None, None
    attributes = [line for line in text_lines if _MCP_ATTRIBUTE.match(line)]
    if not attributes:
        return False, None, None
    name = next((line[5:].strip() or None for line in attributes if line.startswith("Name ")), None)
    firmware = next((line.split()[1] for line in attributes if line.startswith("FirmwareRevision ")), None)
    return True, name, firmware


async def sweep_mcp(hosts: Iterable[str], report: McpReport, reply_wait: float,
                    on_attempt: Callable[[Attempt], None], limiter: anyio.CapacityLimiter) -> None:
    """Send ``Push 0 0 1`` to every host from ``(report.bind, report.port)`` and collect the answers."""
    targets = list(hosts)
    try:
        raw = mcp_socket(report.bind, report.port)
    except OSError as exc:
        report.status = "skipped"
        if exc.errno == errno.EADDRINUSE:
            report.error = (f"UDP {report.port} on {report.bind} is taken by another program (Wireless Systems "
                            "Manager, a running exporter?); MCP devices answer only to that port: stop it or "
                            "use --mcp-bind with another local address")
        else:
            report.error = f"cannot bind UDP {report.bind}:{report.port}: {exc.strerror or exc}"
        for host in targets:
            on_attempt(Attempt(host, MCP, Reason.ERROR, report.error))
        return
    received: dict[str, list[str]] = {}
    own = (report.bind, report.port)
    async with await anyio.abc.UDPSocket.from_socket(raw) as sock:
        report.status = "sent"

        async def receive() -> None:
            async for data, (host, port) in sock:
                if port != report.port or (host, port) == own:
                    continue  # MCP devices send from 53212; our own probe looping back is not an answer
                received.setdefault(host, []).extend(data.decode("latin-1").replace("\n", "\r").split("\r"))

        errors: dict[str, Attempt] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive)
            for host in targets:
                async with limiter:  # pace the sends like the other probes
                    try:
                        await sock.sendto(_MCP_PROBE, host, report.port)
                    except OSError as exc:
                        reason, detail = reason_for(exc)
                        errors[host] = Attempt(host, MCP, reason, detail)
            await anyio.sleep(reply_wait)
            tg.cancel_scope.cancel()
    for host in targets:
        if host in errors:
            on_attempt(errors[host])
            continue
        lines = received.get(host)
        if lines is None:
            on_attempt(Attempt(host, MCP, Reason.TIMEOUT, f"no answer from port {report.port} to Push 0 0 1"))
            continue
        ok, name, firmware = _parse_mcp(lines)
        if not ok:
            on_attempt(Attempt(host, MCP, Reason.GARBAGE, "answer is not MCP attribute lines"))
            continue
        found = Found(host=host, port=report.port, protocol=MCP, plugin="sennheiser-mcp", channels=1, name=name,
                      evidence="MCP attributes for Push 0 0 1" + (f", firmware {firmware}" if firmware else ""),
                      notes=("MCP cannot tell the model (G3, G4 or 2000): set options.model to show it",
                             "the exporter must own UDP 53212 on its host: one MCP client per host"))
        on_attempt(Attempt(host, MCP, Reason.FOUND, found=found))
    report.status = "done"
