"""Build the sdist and wheel, install them with a third-party plugin into a fresh venv, and run the result.

This is what a user does: ``pip install micboard-exporter micboard-exporter-example-http`` and start the
exporter. It proves the packaging ships what the code needs (schema, py.typed, entry points) and that a
plugin from another distribution works without any change to the core. The venv is built once per module.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging_helpers import JsonDevice, serve_device
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".cache", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "__pycache__",
    "*.egg-info", "build", "dist", "node_modules", "htmlcov", ".coverage*",
)


@dataclass(frozen=True)
class Installed:
    """A fresh venv with the built wheel and the example plugin installed."""

    sdist: Path
    wheel: Path
    venv: Path

    @property
    def exe(self) -> Path:
        return self.venv / "bin" / "micboard-exporter"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env.update(extra)
    return env


def _run(*argv: str | Path, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=_env(), check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    # Build from a copy so the build never writes into the working tree others are using.
    src = root / "src"
    shutil.copytree(REPO, src, ignore=_COPY_IGNORE)
    dist = root / "dist"
    built = _run(sys.executable, "-m", "build", "--outdir", dist, src, timeout=240)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    venv = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    # The dev venv's pip installs into the new interpreter: no second pip to bootstrap.
    pip = _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
               "--disable-pip-version-check", "--no-input", wheel, src / "docs" / "plugin-example", timeout=240)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return Installed(sdist, wheel, venv)


def test_sdist_and_wheel_ship_the_schema_and_type_marker(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as tar:
        sdist_names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    with zipfile.ZipFile(installed.wheel) as whl:
        wheel_names = set(whl.namelist())
        entry_points = next(whl.read(n).decode() for n in wheel_names if n.endswith(".dist-info/entry_points.txt"))
    for name in ("micboard_exporter/config.schema.json", "micboard_exporter/py.typed"):
        assert name in sdist_names, f"sdist lacks {name}"
        assert name in wheel_names, f"wheel lacks {name}"
    assert installed.sdist.name == f"micboard_exporter-{VERSION}.tar.gz"
    assert "micboard-exporter = micboard_exporter.cli:main" in entry_points
    assert "synthetic = micboard_exporter.plugins.synthetic:SyntheticPlugin" in entry_points


def test_the_venv_runs_the_installed_wheel_not_the_source_tree(installed: Installed, tmp_path: Path) -> None:
    where = _run(installed.python, "-c", "import micboard_exporter; print(micboard_exporter.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.venv)


def test_version_is_the_one_in_pyproject(installed: Installed) -> None:
    result = _run(installed.exe, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"micboard-exporter {VERSION}"


def test_check_config_accepts_the_example_config(installed: Installed, tmp_path: Path) -> None:
    result = _run(installed.exe, "check-config", REPO / "config.example.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ok = re.search(r"config\.example\.yaml: OK \([1-9]\d* devices; plugins: [^)]*synthetic", result.stdout)
    assert ok, result.stdout


def test_plugins_lists_builtin_and_third_party_with_distributions(installed: Installed) -> None:
    result = _run(installed.exe, "plugins")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["synthetic"] == ["synthetic", VERSION, "micboard-exporter", "ok"]
    assert rows["example-http"] == ["example-http", "0.1.0", "micboard-exporter-example-http", "ok"]


# ------------------------------------------------------------------------------ the running exporter


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def device() -> Iterator[JsonDevice]:
    with serve_device() as dev:
        dev.token = "tok-7f3a"
        yield dev


def test_exporter_polls_a_device_through_the_third_party_plugin(
    installed: Installed, device: JsonDevice, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "poll: {interval: 1s, timeout: 2s}\n"
        "devices:\n"
        "  - id: lab-rx\n"
        "    plugin: example-http\n"
        f"    host: {device.host}\n"
        f"    port: {device.port}\n"
        "    labels: {room: lab}\n"
        "    options: {token_env: LAB_RX_TOKEN}\n"
        "    channels: {1: {slot: 7, name: Pastor Dan}}\n",
        encoding="utf-8",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "exporter.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(installed.exe), "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=_env(LAB_RX_TOKEN="tok-7f3a"),
        )
    try:
        lab = (("device", "lab-rx"), ("room", "lab"))
        ch1 = frozenset((*lab, ("channel", "1")))
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                status, body = _get(f"{base}/metrics")
            except OSError:
                status, body = 0, ""
            if status == 200:
                samples = _samples(body)
                if samples.get(("micboard_device_up", frozenset(lab))) == 1:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"device never came up; last scrape had {len(samples)} samples\n{log_path.read_text()}")

        assert samples[("micboard_transmitter_battery_charge_ratio", ch1)] == 0.8
        assert samples[("micboard_channel_frequency_hertz", ch1)] == 566_125_000
        assert samples[("micboard_rf_signal_strength_dbm", frozenset((*ch1, ("antenna", "combined"))))] == -61.0
        assert samples[("micboard_transmitter_present", frozenset((*lab, ("channel", "2"))))] == 0
        assert samples[("micboard_channel_info", frozenset(
            (*ch1, ("name", "Vox 1"), ("slot", "7"), ("performer", "Pastor Dan"))))] == 1
        assert samples[("micboard_device_info", frozenset((*lab, ("manufacturer", "Example"), ("model", "EX2"),
                                                           ("firmware", "1.2.0"), ("serial", "EX0001"),
                                                           ("host", "127.0.0.1"))))] == 1
        # Unknown battery (255) on channel 3 gives no sample at all.
        assert not any(n == "micboard_transmitter_battery_charge_ratio" and ("channel", "3") in labels
                       for n, labels in samples)
        assert samples[("micboard_poll_duration_seconds_count", frozenset({("plugin", "example-http")}))] >= 1
        assert ("/api/status", "Bearer tok-7f3a") in device.requests

        # The poller keeps going: a change on the device shows up within a few intervals.
        with device.lock:
            device.status["channels"][0]["battery_percent"] = 40
        deadline = time.monotonic() + 10
        while samples.get(("micboard_transmitter_battery_charge_ratio", ch1)) != 0.4:
            assert time.monotonic() < deadline, "battery change never reached /metrics"
            time.sleep(0.2)
            samples = _samples(_get(f"{base}/metrics")[1])

        assert _get(f"{base}/-/ready") == (200, "Ready\n")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"exporter ignored SIGTERM\n{log_path.read_text()}")
    log_text = log_path.read_text()
    assert code == 0, log_text
    assert "SIGTERM received: shutting down" in log_text
    assert "tok-7f3a" not in log_text
