"""HTTP endpoints of a running exporter, over real loopback sockets."""

from __future__ import annotations

import gzip
from html.parser import HTMLParser
from pathlib import Path

import anyio
import httpx
import pytest
from core_helpers import ScriptedPlugin, reset_scripted
from exporter_harness import running_exporter

pytestmark = pytest.mark.anyio

BASE = """
poll: {interval: 200ms, timeout: 150ms, retries: 0}
probe: {allowed_targets: ["127.0.0.0/8", "rx.example"]}
devices:
  - {id: a, plugin: scripted, host: 127.0.0.1}
  - {id: b, plugin: scripted, host: 127.0.0.2, options: {mode: protocol}}
"""


@pytest.fixture(autouse=True)
def _reset() -> None:
    reset_scripted()


async def test_metrics_has_devices_and_self_metrics(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (_, client):
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert 'micboard_device_up{device="a"} 1' in r.text
        assert 'micboard_device_up{device="b"} 0' in r.text
        assert "micboard_exporter_build_info{" in r.text
        assert "process_resident_memory_bytes" in r.text


async def test_metrics_gzip_when_asked(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (_, client):
        raw = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip"
        # httpx decodes transparently; compare with a plain request made right after.
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert 'micboard_device_up{device="a"} 1' in raw.text
        assert len(raw.content) > 0 and int(raw.headers["content-length"]) < len(plain.content)


async def test_gzip_body_is_valid_gzip(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (exporter, _):
        assert exporter.http is not None
        async with httpx.AsyncClient() as raw_client:
            req = raw_client.build_request("GET", f"http://127.0.0.1:{exporter.http.port}/metrics",
                                           headers={"Accept-Encoding": "gzip"})
            resp = await raw_client.send(req, stream=True)
            body = b"".join([chunk async for chunk in resp.aiter_raw()])
            await resp.aclose()
        assert gzip.decompress(body).startswith(b"# HELP micboard_device_up")


async def test_health_ready_404_405(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (_, client):
        assert (await client.get("/-/healthy")).text == "Healthy\n"
        assert (await client.get("/-/ready")).status_code == 200
        assert (await client.get("/nope")).status_code == 404
        r = await client.post("/metrics")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        assert (await client.get("/-/reload")).status_code == 405
        head = await client.head("/metrics")
        assert head.status_code == 200 and head.content == b""


async def test_not_ready_until_the_first_cycle_finishes(tmp_path: Path) -> None:
    config = (
        "poll: {interval: 5s, timeout: 1s}\n"
        "devices:\n  - {id: a, plugin: scripted, host: 127.0.0.1, options: {mode: hang}}\n"
    )
    async with running_exporter(config, tmp_path, wait_ready=False) as (exporter, client):
        r = await client.get("/-/ready")
        assert r.status_code == 503 and "first poll cycle" in r.text
        with anyio.fail_after(5):
            while not exporter.store.ready:
                await anyio.sleep(0.02)
        assert (await client.get("/-/ready")).status_code == 200


@pytest.mark.parametrize(("query", "status", "message"), [
    ("", 400, "missing parameter 'target'"),
    ("target=127.0.0.5", 400, "missing parameter 'plugin'"),
    ("target=127.0.0.5&plugin=nope", 400, "unknown plugin 'nope'; available plugins: scripted, secretive, synthetic"),
    ("target=10.1.1.1&plugin=scripted", 403, "target 10.1.1.1 is not in probe.allowed_targets"),
    ("target=evil.example&plugin=scripted", 403, "not in probe.allowed_targets"),
    ("target=127.0.0.5:99999&plugin=scripted", 400, "out of range"),
    ("target=a/b&plugin=scripted", 400, "is not HOST or HOST:PORT"),
    ("target=127.0.0.5&target=127.0.0.6&plugin=scripted", 400, "more than once"),
])
async def test_probe_rejects_bad_requests(tmp_path: Path, query: str, status: int, message: str) -> None:
    async with running_exporter(BASE, tmp_path) as (_, client):
        r = await client.get(f"/probe?{query}")
        assert r.status_code == status
        assert message in r.text


async def test_probe_disabled_without_allowed_targets(tmp_path: Path) -> None:
    async with running_exporter("devices: []\n", tmp_path) as (_, client):
        r = await client.get("/probe?target=127.0.0.1&plugin=scripted")
        assert r.status_code == 403 and "probe.allowed_targets" in r.text


async def test_probe_polls_once_into_a_fresh_rendering(tmp_path: Path) -> None:
    # A name that resolves into the allowed networks (rx.example does not resolve: 403).
    async with running_exporter(BASE.replace('"rx.example"', '"rx.example", localhost'), tmp_path) as (_, client):
        r = await client.get("/probe?target=localhost:2202&plugin=scripted")
        assert r.status_code == 200
        assert "micboard_probe_success 1" in r.text
        assert 'micboard_device_up{device="localhost:2202"} 1' in r.text
        assert 'device="a"' not in r.text  # nothing from the background poller
        assert "micboard_probe_duration_seconds " in r.text


async def test_probe_honours_the_scrape_timeout_header(tmp_path: Path) -> None:
    config = BASE.replace("probe: {", "defaults: {scripted: {mode: hang}}\nprobe: {")
    async with running_exporter(config, tmp_path) as (_, client):
        with anyio.fail_after(3):
            r = await client.get("/probe?target=127.0.0.7&plugin=scripted",
                                 headers={"X-Prometheus-Scrape-Timeout-Seconds": "0.8"})
        assert r.status_code == 200 and "micboard_probe_success 0" in r.text
        duration = float(r.text.split("\nmicboard_probe_duration_seconds ")[1].split()[0])
        assert 0.25 < duration < 0.6  # 0.8 s minus the 0.5 s offset


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_landing_page_escapes_device_strings(tmp_path: Path) -> None:
    from core_helpers import snapshot

    async with running_exporter(BASE, tmp_path) as (exporter, client):
        exporter.store.publish("a", snapshot("a", name="<script>alert(1)</script>"))
        r = await client.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        parser = _TextCollector()
        parser.feed(r.text)
        assert parser.scripts == 0
        assert "<script>alert(1)</script>" in "".join(parser.text)  # shown as text
        assert "&lt;script&gt;" in r.text
        assert "garbage" in r.text  # last error of device b
        assert 'href="/metrics"' in r.text


async def test_reload_good_then_bad(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (exporter, client):
        path = tmp_path / "config.yaml"
        path.write_text(BASE + "  - {id: c, plugin: scripted, host: 127.0.0.3}\n", encoding="utf-8")
        r = await client.post("/-/reload")
        assert r.status_code == 200 and "3 devices" in r.text
        path.write_text("poll: {interval: nope}\n", encoding="utf-8")
        r = await client.post("/-/reload")
        assert r.status_code == 500 and "poll.interval" in r.text
        metrics = (await client.get("/metrics")).text
        assert "micboard_config_last_reload_successful 0.0" in metrics
        # The running config keeps polling all three devices.
        before = ScriptedPlugin.calls.get("c", 0)
        with anyio.fail_after(3):
            while ScriptedPlugin.calls.get("c", 0) <= before:
                await anyio.sleep(0.05)
        assert exporter.config is not None and len(exporter.config.devices) == 3


async def test_reload_removes_devices_and_forgets_them(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (_, client):
        (tmp_path / "config.yaml").write_text(BASE.split("  - {id: b")[0], encoding="utf-8")
        assert (await client.post("/-/reload")).status_code == 200
        text = (await client.get("/metrics")).text
        assert 'device="b"' not in text
        assert "b" in ScriptedPlugin.forgotten


async def test_reload_closes_plugins_no_longer_used(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (exporter, client):
        (tmp_path / "config.yaml").write_text(
            "devices:\n  - {id: s, plugin: synthetic, host: 127.0.0.1}\n", encoding="utf-8")
        assert (await client.post("/-/reload")).status_code == 200
        assert ScriptedPlugin.closed == ["scripted"]
        assert set(exporter.plugins) == {"synthetic"}


async def test_concurrent_scrapes_while_polling(tmp_path: Path) -> None:
    devices = "".join(f"  - {{id: s{i}, plugin: synthetic, host: 127.0.0.1}}\n" for i in range(50))
    config = "poll: {interval: 50ms, timeout: 1s}\ndevices:\n" + devices
    async with running_exporter(config, tmp_path) as (_, client):
        bodies: list[str] = []

        async def scrape() -> None:
            for _ in range(5):
                r = await client.get("/metrics")
                assert r.status_code == 200
                bodies.append(r.text)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(scrape)
        assert len(bodies) == 40
        assert all(b.count("micboard_device_up{") == 50 for b in bodies)


async def test_relabelling_keeps_the_device_session(tmp_path: Path) -> None:
    async with running_exporter(BASE, tmp_path) as (_, client):
        relabelled = BASE.replace("{id: a, plugin: scripted, host: 127.0.0.1}",
                                  "{id: a, plugin: scripted, host: 127.0.0.1, labels: {room: hall}, "
                                  "channels: {1: {slot: 4, name: Pastor}}}")
        (tmp_path / "config.yaml").write_text(relabelled, encoding="utf-8")
        assert (await client.post("/-/reload")).status_code == 200
        text = (await client.get("/metrics")).text
        assert 'micboard_device_up{device="a",room="hall"} 1' in text
        assert 'slot="4",performer="Pastor"' in text
        assert ScriptedPlugin.forgotten == []  # labels and performer names are not the plugin's business
        (tmp_path / "config.yaml").write_text(relabelled.replace("host: 127.0.0.1,", "host: 127.0.0.9,"))
        assert (await client.post("/-/reload")).status_code == 200
        assert ScriptedPlugin.forgotten == ["a"]  # a new address is
