"""deploy/systemd/micboard-exporter.service: hardened, valid for systemd, and runs our real command line."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from micboard_exporter.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "micboard-exporter.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEM_UNITS = Path("/lib/systemd/system")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section → key → every value (systemd allows repeated keys, which configparser does not)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        sections[current][key.strip()].append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("Restart", "on-failure"),
        ("EnvironmentFile", "-/etc/micboard-exporter/secrets.env"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ],
)
def test_hardening_and_lifecycle_settings(service: dict[str, list[str]], key: str, value: str) -> None:
    assert service[key] == [value]


def test_system_calls_are_filtered_to_the_service_set(service: dict[str, list[str]]) -> None:
    filters = service["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert all(f.startswith("~") for f in filters[1:]), "later filters may only take calls away"


def test_execstart_is_a_command_line_the_exporter_accepts(service: dict[str, list[str]]) -> None:
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "/opt/micboard-exporter/bin/micboard-exporter"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert args.config == "/etc/micboard-exporter/config.yaml"


def test_install_notes_use_the_same_paths() -> None:
    notes = (REPO / "deploy" / "systemd" / "README.md").read_text(encoding="utf-8")
    for path in ("/opt/micboard-exporter", "/etc/micboard-exporter/config.yaml", "/etc/micboard-exporter/secrets.env",
                 "micboard-exporter.service"):
        assert path in notes, path
    for command in ("systemctl enable --now micboard-exporter", "systemctl reload micboard-exporter",
                    "journalctl -u micboard-exporter", "micboard-exporter check-config"):
        assert command in notes, command


@pytest.fixture
def offline_root(tmp_path: Path) -> Path:
    """A filesystem root with the stock system units, a stand-in executable and the unit installed."""
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr/lib/systemd/system", symlinks=True)
    exe = tmp_path / "opt/micboard-exporter/bin/micboard-exporter"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "bin").mkdir()
    shutil.copy2("/bin/kill", tmp_path / "bin/kill")
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy2(UNIT, tmp_path / "etc/systemd/system" / UNIT.name)
    return tmp_path


needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None or not SYSTEM_UNITS.is_dir(), reason="systemd-analyze and system units not installed"
)


@needs_systemd
def test_systemd_analyze_verify_accepts_the_unit_without_warnings(offline_root: Path) -> None:
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", f"--root={offline_root}", f"/etc/systemd/system/{UNIT.name}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    # verify exits 0 even for unknown keys or bad values ("..., ignoring"), so any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd
def test_systemd_security_exposure_is_low(offline_root: Path) -> None:
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "security", "--offline=true", f"--root={offline_root}", "--no-pager", UNIT.name],
        capture_output=True, text=True, timeout=60, check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
