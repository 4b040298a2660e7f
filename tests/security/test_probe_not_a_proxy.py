"""``/probe`` is not an open proxy: off by default, configured plugins only, names pinned to allowed networks."""

from __future__ import annotations

import socket
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from security_helpers import RecordingPlugin, client, exporter_running

from micboard_exporter.model import ChannelSnapshot, DeviceSnapshot, TransmitterSnapshot

pytestmark = pytest.mark.anyio

#: Fake DNS for names under .test (RFC 6761: never on the Internet); anything else must not be looked up.
ZONE = {"rx.test": ["127.0.0.44"], "outside.test": ["10.20.30.40"], "mixed.test": ["192.0.2.7", "127.0.0.45"]}


@pytest.fixture(autouse=True)
def _fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    RecordingPlugin.hosts.clear()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):  # anyio passes the IDNA-encoded name
            host = host.decode("ascii")
        if isinstance(host, str) and host.endswith(".test"):
            if host not in ZONE:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0)) for a in ZONE[host]]
        if isinstance(host, str) and host not in ("localhost",) and not host.replace(".", "").isdigit():
            raise AssertionError(f"test tried to resolve {host!r} off the fake zone")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


CONFIG = """
poll: {interval: 1s, timeout: 1s}
probe: {allowed_targets: ["127.0.0.0/8", rx.test, outside.test, mixed.test, nowhere.test]}
devices:
  - {id: r1, plugin: recording, host: 127.0.0.1}
"""


@pytest.mark.parametrize(("query", "status", "reason"), [
    ("target=127.0.0.2&plugin=synthetic", 403, "plugin 'synthetic' is not used by the running config"),
    ("target=10.0.0.1&plugin=recording", 403, "target 10.0.0.1 is not in probe.allowed_targets"),
    ("target=[::1]&plugin=recording", 403, "not in probe.allowed_targets"),
    ("target=other.test&plugin=recording", 403, "not in probe.allowed_targets"),
    ("target=outside.test:2202&plugin=recording", 403, "resolves to 10.20.30.40, outside the networks"),
    ("target=127.0.0.1@10.0.0.1&plugin=recording", 400, "is not HOST or HOST:PORT"),
    ("target=http://10.0.0.1/&plugin=recording", 400, "is not HOST or HOST:PORT"),
])
async def test_refused_targets_get_a_reason(tmp_path: Path, query: str, status: int, reason: str) -> None:
    async with exporter_running(CONFIG, tmp_path) as exporter, client(exporter) as c:
        r = await c.get(f"/probe?{query}")
        assert r.status_code == status
        assert reason in r.text
    assert "10.20.30.40" not in RecordingPlugin.hosts and "10.0.0.1" not in RecordingPlugin.hosts


async def test_allowed_name_is_pinned_to_an_address_in_the_networks(tmp_path: Path) -> None:
    async with exporter_running(CONFIG, tmp_path) as exporter, client(exporter) as c:
        RecordingPlugin.hosts.clear()
        r = await c.get("/probe?target=rx.test:2202&plugin=recording")
        assert r.status_code == 200 and "micboard_probe_success 1" in r.text
        assert 'device="rx.test:2202"' in r.text  # the name stays the identity
        assert RecordingPlugin.hosts == ["127.0.0.44"]  # the plugin was handed the checked address
        RecordingPlugin.hosts.clear()
        r = await c.get("/probe?target=mixed.test&plugin=recording")
        assert r.status_code == 200
        assert RecordingPlugin.hosts == ["127.0.0.45"]  # never 192.0.2.7


async def test_names_only_config_probes_the_name(tmp_path: Path) -> None:
    config = CONFIG.replace('"127.0.0.0/8", ', "")
    async with exporter_running(config, tmp_path) as exporter, client(exporter) as c:
        RecordingPlugin.hosts.clear()
        r = await c.get("/probe?target=rx.test&plugin=recording")
        assert r.status_code == 200
        assert RecordingPlugin.hosts == ["rx.test"]
        assert (await c.get("/probe?target=127.0.0.1&plugin=recording")).status_code == 403


async def test_defaults_make_a_plugin_probeable(tmp_path: Path) -> None:
    config = CONFIG + "defaults: {synthetic: {channels: 2}}\n"
    async with exporter_running(config, tmp_path) as exporter, client(exporter) as c:
        r = await c.get("/probe?target=127.0.0.2&plugin=synthetic")
        assert r.status_code == 200 and "micboard_probe_success 1" in r.text


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_landing_page_escapes_every_device_string(tmp_path: Path) -> None:
    evil = '<img src=x onerror="alert(1)">'
    snap = DeviceSnapshot(
        device_id="r1", manufacturer=f"M{evil}", model=f"X{evil}", firmware=f"F{evil}", serial=f"S{evil}",
        host="127.0.0.1",
        channels=(ChannelSnapshot(number=1, name=f"<script>alert(1)</script>{evil}",
                                  transmitter=TransmitterSnapshot(model=f"T{evil}", battery_type=f"B{evil}")),),
    )
    async with exporter_running(CONFIG, tmp_path) as exporter, client(exporter) as c:
        exporter.store.publish("r1", snap)
        exporter.store.record_failure("r1", "protocol", f"E{evil}")  # a device error text on the page
        r = await c.get("/")
    page = _Page()
    page.feed(r.text)
    assert "script" not in page.tags and "img" not in page.tags
    assert not any(name.startswith("on") for name, _ in page.attrs)
    assert "<script>alert(1)</script>" in "".join(page.text)  # shown as text, not run
