"""The HTTP server under a real TLS client, basic auth, and hostile clients (oversized, slow, too many)."""

from __future__ import annotations

import base64
import socket
import ssl
import time
from pathlib import Path

import anyio
import httpx
import pytest
from security_helpers import Pki, bcrypt_hash, client, exporter_running, make_pki, port_of

from micboard_exporter import server

pytestmark = pytest.mark.anyio

CONFIG = "poll: {interval: 200ms, timeout: 1s}\ndevices:\n  - {id: s1, plugin: synthetic, host: 127.0.0.1}\n"
PATHS = ("/", "/metrics", "/-/healthy", "/-/ready", "/probe?target=127.0.0.1&plugin=synthetic", "/nope")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _tls_web(tmp_path: Path, pki: Pki, extra: str = "") -> Path:
    cert, key = pki.issue("server")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n{extra}")
    return web


def _ctx(pki: Pki, *, cert: tuple[Path, Path] | None = None, max_version: ssl.TLSVersion | None = None
         ) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


async def test_tls_serves_metrics_to_a_verifying_client(tmp_path: Path, pki: Pki) -> None:
    web = _tls_web(tmp_path, pki, "http_server_config:\n  headers: {Strict-Transport-Security: max-age=300}\n")
    async with exporter_running(CONFIG, tmp_path, web_config=web) as exporter:
        assert exporter.http is not None and exporter.http.url.startswith("https://")
        async with client(exporter, https=True, verify=_ctx(pki)) as c:
            r = await c.get("/metrics")
            assert r.status_code == 200 and 'micboard_device_up{device="s1"} 1' in r.text
            assert r.headers["strict-transport-security"] == "max-age=300"
            assert r.extensions["network_stream"].get_extra_info("ssl_object").version() == "TLSv1.3"
        # Plain HTTP on the TLS port gets no answer (the handshake fails and the connection is closed).
        async with client(exporter) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get("/metrics")
        # A client that does not trust the CA refuses the server.
        async with client(exporter, https=True, verify=ssl.create_default_context()) as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get("/metrics")


async def test_min_version_refuses_older_clients(tmp_path: Path, pki: Pki) -> None:
    web = _tls_web(tmp_path, pki, "  min_version: TLS13\n")
    async with exporter_running(CONFIG, tmp_path, web_config=web) as exporter:
        async with client(exporter, https=True, verify=_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)) as old:
            with pytest.raises(httpx.ConnectError):
                await old.get("/metrics")
        async with client(exporter, https=True, verify=_ctx(pki)) as new:
            assert (await new.get("/-/healthy")).status_code == 200


async def test_client_certificates_required_and_verified(tmp_path: Path, pki: Pki) -> None:
    web = _tls_web(tmp_path, pki, f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca_file}\n")
    good = pki.issue("prometheus", server=False)
    stranger = make_pki(tmp_path / "other", "Other CA").issue("intruder", server=False)
    async with exporter_running(CONFIG, tmp_path, web_config=web) as exporter:
        async with client(exporter, https=True, verify=_ctx(pki, cert=good)) as c:
            assert (await c.get("/metrics")).status_code == 200
        for ctx in (_ctx(pki), _ctx(pki, cert=stranger)):
            async with client(exporter, https=True, verify=ctx) as c:
                # TLS 1.3 reports a refused client certificate on the first read (httpx then lets the raw
                # ssl.SSLError through), not in the handshake.
                with pytest.raises((httpx.TransportError, ssl.SSLError)):
                    await c.get("/metrics")


async def test_a_stalled_tls_handshake_does_not_block_other_clients(tmp_path: Path, pki: Pki,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "TLS_HANDSHAKE_TIMEOUT_S", 0.5)
    web = _tls_web(tmp_path, pki)
    async with exporter_running(CONFIG, tmp_path, web_config=web) as exporter:
        silent = await anyio.connect_tcp("127.0.0.1", port_of(exporter))  # never sends a ClientHello
        try:
            async with client(exporter, https=True, verify=_ctx(pki)) as c:
                with anyio.fail_after(3):
                    assert (await c.get("/-/healthy")).status_code == 200
            with anyio.fail_after(3):  # the server gives up on the silent one
                assert await _closed_by_peer(silent)
        finally:
            await silent.aclose()


async def _closed_by_peer(stream: anyio.abc.SocketStream) -> bool:
    try:
        await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
        return True
    return False


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_basic_auth_protects_every_path(tmp_path: Path, pki: Pki) -> None:
    web = _tls_web(tmp_path, pki, f"basic_auth_users:\n  prom: '{bcrypt_hash('s3cret pass:with colon')}'\n")
    config = CONFIG + "probe: {allowed_targets: ['127.0.0.0/8']}\n"
    async with exporter_running(config, tmp_path, web_config=web) as exporter, \
            client(exporter, https=True, verify=_ctx(pki)) as c:
            bad_headers = [{}, _basic("prom", "wrong"), _basic("nobody", "s3cret pass:with colon"),
                           {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"},
                           {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}]
            for path in PATHS:
                for headers in bad_headers:
                    r = await c.get(path, headers=headers)
                    assert r.status_code == 401, (path, headers)
                    assert r.headers["www-authenticate"].startswith("Basic realm=")
                    assert "micboard" not in r.text.replace("micboard-exporter", "")
                assert (await c.post("/-/reload")).status_code == 401
            ok = _basic("prom", "s3cret pass:with colon")
            assert (await c.get("/metrics", headers=ok)).status_code == 200
            assert (await c.get("/-/healthy", headers=ok)).status_code == 200
            assert (await c.post("/-/reload", headers=ok)).status_code == 200


async def test_web_config_change_is_picked_up_without_restart(tmp_path: Path, pki: Pki) -> None:
    """Certificate rotation: new files are served on the next connection; new users apply at once."""
    web = _tls_web(tmp_path, pki, f"basic_auth_users:\n  prom: '{bcrypt_hash('old')}'\n")
    async with exporter_running(CONFIG, tmp_path, web_config=web) as exporter:
        async with client(exporter, https=True, verify=_ctx(pki)) as c:
            r = await c.get("/-/healthy", headers=_basic("prom", "old"))
            first = r.extensions["network_stream"].get_extra_info("ssl_object").getpeercert()["serialNumber"]
        pki.issue("server", serial=4242)  # rotate the certificate in place
        text = web.read_text().replace("prom:", "rotated:", 1)
        web.write_text(text.split("rotated:")[0] + f"rotated: '{bcrypt_hash('new')}'\n")
        assert exporter.http is not None
        with anyio.fail_after(5):
            while exporter.http.web.reloads < 1:
                async with client(exporter, https=True, verify=_ctx(pki)) as c:
                    await c.get("/-/healthy")
                await anyio.sleep(0.2)
        async with client(exporter, https=True, verify=_ctx(pki)) as c:
            r = await c.get("/-/healthy", headers=_basic("rotated", "new"))
            assert r.status_code == 200
            serial = r.extensions["network_stream"].get_extra_info("ssl_object").getpeercert()["serialNumber"]
            assert serial != first and int(serial, 16) == 4242
            assert (await c.get("/-/healthy", headers=_basic("prom", "old"))).status_code == 401


# ------------------------------------------------------------------------------------------- limits


def _raw_request(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


async def test_request_line_and_header_limits(tmp_path: Path) -> None:
    async with exporter_running(CONFIG, tmp_path) as exporter:
        port = port_of(exporter)
        long_line = b"GET /metrics?" + b"a" * server.MAX_REQUEST_LINE + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        reply = await anyio.to_thread.run_sync(_raw_request, port, long_line)
        assert reply.startswith(b"HTTP/1.1 414 ")
        big_headers = b"GET /metrics HTTP/1.1\r\n" + b"".join(
            b"X-Filler-%d: %s\r\n" % (i, b"b" * 1000) for i in range(20)) + b"\r\n"
        reply = await anyio.to_thread.run_sync(_raw_request, port, big_headers)
        assert reply.startswith(b"HTTP/1.1 431 ")
        one_huge = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"c" * 100_000 + b"\r\n\r\n"
        reply = await anyio.to_thread.run_sync(_raw_request, port, one_huge)
        assert reply.startswith(b"HTTP/1.1 431 ")
        many = b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n"
        reply = await anyio.to_thread.run_sync(_raw_request, port, many)
        assert reply.startswith(b"HTTP/1.1 431 ")
        # Just inside the limits is served.
        fits = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fill: " + b"d" * 8000 + b"\r\n\r\n"
        reply = await anyio.to_thread.run_sync(_raw_request, port, fits)
        assert reply.startswith(b"HTTP/1.1 200 ")


def _drip(port: int, data: bytes, interval: float, stop_after: float) -> tuple[float, bytes]:
    """Send ``data`` a byte at a time; return when the server closes (or ``stop_after`` passes)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=stop_after) as sock:
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - started > stop_after:
                break
            time.sleep(interval)
        sock.settimeout(max(stop_after - (time.monotonic() - started), 0.1))
        try:
            reply = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            reply = b""
    return time.monotonic() - started, reply


async def test_slowloris_is_cut_off_by_the_head_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT_S", 1.0)
    async with exporter_running(CONFIG, tmp_path) as exporter:
        port = port_of(exporter)
        head = b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(50)) + b"\r\n"
        # Each byte comes well within the per-read timeout, so only the whole-head deadline can stop it.
        async with anyio.create_task_group() as tg:
            results: list[tuple[float, bytes]] = []

            async def one() -> None:
                results.append(await anyio.to_thread.run_sync(_drip, port, head, 0.05, 8.0))

            for _ in range(3):
                tg.start_soon(one)
            async with client(exporter) as c:  # meanwhile others are served
                await anyio.sleep(0.3)
                assert (await c.get("/-/healthy")).status_code == 200
        for elapsed, reply in results:
            assert elapsed < 3.0, elapsed  # closed after ~1 s, not after the ~27 s the drip would take
            assert b"200 OK" not in reply


async def test_idle_keepalive_connection_is_not_cut_by_the_head_deadline(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT_S", 0.5)
    async with exporter_running(CONFIG, tmp_path) as exporter, client(exporter) as c:
        assert (await c.get("/-/healthy")).status_code == 200
        await anyio.sleep(1.0)  # longer than the head deadline, idle between requests
        r = await c.get("/-/healthy")
        assert r.status_code == 200


async def test_concurrent_scrape_limit_answers_503(tmp_path: Path) -> None:
    config = ("poll: {interval: 1s, timeout: 1s}\nprobe: {allowed_targets: ['127.0.0.0/8']}\n"
              "defaults: {recording: {hang: true}}\n"
              "devices:\n  - {id: s1, plugin: synthetic, host: 127.0.0.1}\n")
    async with exporter_running(config, tmp_path) as exporter, \
            client(exporter, limits=httpx.Limits(max_connections=50)) as c:
            holders: list[int] = []

            async def hold() -> None:
                r = await c.get("/probe?target=127.0.0.9&plugin=recording",
                                headers={"X-Prometheus-Scrape-Timeout-Seconds": "3.5"})
                holders.append(r.status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(server.MAX_CONCURRENT_SCRAPES):
                    tg.start_soon(hold)
                with anyio.fail_after(5):
                    while True:  # wait until every slot is taken by a hanging probe
                        r = await c.get("/metrics")
                        if r.status_code == 503:
                            break
                        await anyio.sleep(0.05)
                assert "Limit of concurrent requests" in r.text
                assert (await c.get("/-/healthy")).status_code == 200  # not a scrape: still served
            assert holders == [200] * server.MAX_CONCURRENT_SCRAPES
            assert (await c.get("/metrics")).status_code == 200  # slots are given back


async def test_connection_cap_drops_the_excess_and_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 4)
    async with exporter_running(CONFIG, tmp_path) as exporter:
        port = port_of(exporter)
        idle = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(4)]
        try:
            await anyio.sleep(0.2)
            extra = await anyio.connect_tcp("127.0.0.1", port)
            with anyio.fail_after(3):
                assert await _closed_by_peer(extra)
            await extra.aclose()
        finally:
            for s in idle:
                await s.aclose()
        async with client(exporter) as c:
            with anyio.fail_after(5):
                while True:
                    try:
                        if (await c.get("/-/healthy")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await anyio.sleep(0.05)
