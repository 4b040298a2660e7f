"""`demo` and `simulate`: the simulated fleet over real loopback protocols, as `make run` shows it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from test_cli import free_port

from micboard_exporter.cli import DEMO_FLEET, main
from micboard_exporter.simulators.fleet import parse_fleet, simulator_kinds


def wait_for(url: str, proc: subprocess.Popen[str], predicate: str, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        assert proc.poll() is None, "process exited early"
        try:
            text = httpx.get(url, timeout=5).text
            if predicate in text:
                return text
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{predicate!r} not seen at {url}; last body:\n{text[:2000]}")


def test_every_demo_kind_has_a_simulator() -> None:
    kinds = simulator_kinds()
    missing = [e["kind"] for e in DEMO_FLEET if e["kind"] not in kinds]
    assert missing == []


@pytest.mark.slow
def test_demo_serves_every_simulated_device() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "micboard_exporter", "demo", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        text = wait_for(url, proc, "micboard_poll_cycle_devices")
        deadline = time.monotonic() + 30
        expected = [e["id"] for e in DEMO_FLEET] + ["synthetic-1", "synthetic-2", "synthetic-3"]
        while time.monotonic() < deadline:
            text = httpx.get(url, timeout=5).text
            if all(f'micboard_device_up{{device="{d}",room="demo"}} 1' in text for d in expected):
                break
            time.sleep(0.3)
        down = [d for d in expected if f'micboard_device_up{{device="{d}",room="demo"}} 1' not in text]
        assert down == [], f"devices not up in the demo: {down}"
        # Every device has channels with names and wall-board slots.
        for d in expected:
            assert f'micboard_channel_info{{device="{d}",room="demo",channel="1",' in text
        assert 'slot=""' not in text
        # promtool's linter accepts a real scrape of every protocol's metrics.
        promtool = shutil.which("promtool")
        assert promtool, "promtool not found: run `make tools` (Debian package 'prometheus')"
        lint = subprocess.run([promtool, "check", "metrics"], input=httpx.get(url, timeout=5).content,
                              capture_output=True, timeout=30, check=False)
        assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            if proc.stdout:
                proc.stdout.close()
    assert code == 0


def test_simulate_writes_an_exporter_config_that_validates(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"simulators": [
        {"kind": "shure-ulxd", "id": "rx1", "model": "ULXD4D"},
        {"kind": "shure-qlxd", "id": "rx2"},
    ]}))
    out = tmp_path / "exporter.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "micboard_exporter", "simulate", "--config", str(fleet),
                             "--exporter-config", str(out), "--step", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].split()[:3] == ["rx1", "shure-ulxd", "ULXD4D"]
        assert lines[2].startswith("exporter config written")
        doc = yaml.safe_load(out.read_text())
        assert [d["id"] for d in doc["devices"]] == ["rx1", "rx2"]
        assert main(["check-config", str(out)]) == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@pytest.mark.parametrize(("doc", "message"), [
    ({"nope": []}, "expected a mapping with a 'simulators' list"),
    ({"simulators": ["x"]}, "simulators[0]: expected a mapping"),
    ({"simulators": [{"kind": "shure-ulxd", "colour": "red"}]}, "unknown keys colour"),
    ({"simulators": [{"kind": "acme-9000"}]}, "unknown simulator kind 'acme-9000'"),
    ({"simulators": [{"kind": "shure-ulxd", "id": "a"}, {"kind": "shure-qlxd", "id": "a"}]}, "duplicate id 'a'"),
])
def test_bad_fleet_files(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_fleet(doc, "fleet.yaml")


def test_simulate_reports_a_bad_fleet_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("simulators: [{kind: nope}]\n")
    assert main(["simulate", "--config", str(bad)]) == 1
    assert "unknown simulator kind 'nope'" in capsys.readouterr().err
