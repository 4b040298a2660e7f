"""``/probe`` with networks in ``probe.allowed_targets`` refuses a listed name it cannot resolve (or not in
time) with 403 and the reason: an address nobody checked against the networks is never handed to a plugin,
whose own lookup could land anywhere. With names only, the name itself is the allowance, as before."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from security_helpers import RecordingPlugin, client, exporter_running

from micboard_exporter import probe

pytestmark = pytest.mark.anyio

CONFIG = """
poll: {interval: 1s, timeout: 1s}
probe: {allowed_targets: ["127.0.0.0/8", nowhere.test, slow.test]}
devices:
  - {id: r1, plugin: recording, host: 127.0.0.1}
"""


@pytest.fixture(autouse=True)
def _fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``nowhere.test`` is NXDOMAIN, ``slow.test`` answers after 1 s; any other lookup fails the test."""
    RecordingPlugin.hosts.clear()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii") if isinstance(host, bytes) else host
        if name == "nowhere.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if name == "slow.test":
            time.sleep(1.0)  # a resolver that is slower than the probe's lookup budget
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.46", port or 0))]
        if isinstance(name, str) and not name.replace(".", "").isdigit():
            raise AssertionError(f"test tried to resolve {name!r}")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(probe, "RESOLVE_TIMEOUT_S", 0.2)


async def test_a_name_that_does_not_resolve_is_refused_with_the_reason(tmp_path: Path) -> None:
    async with exporter_running(CONFIG, tmp_path) as exporter, client(exporter) as c:
        RecordingPlugin.hosts.clear()
        r = await c.get("/probe?target=nowhere.test:2202&plugin=recording")
        assert r.status_code == 403
        assert "target nowhere.test does not resolve (" in r.text
        assert "Name or service not known" in r.text
        assert "probed only at an address in them" in r.text
        assert RecordingPlugin.hosts == []  # the plugin never saw the name


async def test_a_name_that_resolves_too_slowly_is_refused(tmp_path: Path) -> None:
    async with exporter_running(CONFIG, tmp_path) as exporter, client(exporter) as c:
        RecordingPlugin.hosts.clear()
        r = await c.get("/probe?target=slow.test&plugin=recording")
        assert r.status_code == 403
        assert "target slow.test did not resolve within 0.2 s" in r.text
        assert RecordingPlugin.hosts == []


async def test_names_only_config_still_hands_the_name_to_the_plugin(tmp_path: Path) -> None:
    config = CONFIG.replace('"127.0.0.0/8", ', "")
    async with exporter_running(config, tmp_path) as exporter, client(exporter) as c:
        RecordingPlugin.hosts.clear()
        r = await c.get("/probe?target=nowhere.test&plugin=recording")
        assert r.status_code == 200
        assert RecordingPlugin.hosts == ["nowhere.test"]
