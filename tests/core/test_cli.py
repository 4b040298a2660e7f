"""The command line: exit codes, messages, and a real process that serves, reloads on SIGHUP and stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from micboard_exporter import __version__
from micboard_exporter.cli import build_parser, main

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"micboard-exporter {__version__}"


def test_every_flag_has_help() -> None:
    parser = build_parser()
    actions = list(parser._actions)
    for sub in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for child in sub.choices.values():  # type: ignore[union-attr]
            actions.extend(child._actions)
    for action in actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help text"


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config.example.yaml")]) == 0
    assert "OK (3 devices; plugins: synthetic)" in capsys.readouterr().out


def test_check_config_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices:\n  - {id: a, plugin: synthetic, host: 127.0.0.1}\n  - {id: a, plugin: nope, host: x}\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "configuration invalid (2 problems)" in err
    assert f"{bad}: devices[1].id: duplicate device id 'a' (also devices[0].id)" in err
    assert f"{bad}: devices[1].plugin: unknown plugin 'nope'" in err


def test_run_with_bad_config_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("poll: {interval: 5x}\n")
    assert main(["--config", str(bad)]) == 1
    assert "poll.interval" in capsys.readouterr().err


def test_run_rejects_bad_shard_flags(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(ROOT / "config.example.yaml")
    assert main(["run", "--config", cfg, "--shard-index", "3", "--shard-count", "3"]) == 2
    assert main(["run", "--config", cfg, "--shard-index", "pod"]) == 2
    err = capsys.readouterr().err
    assert "must be in 0..2" in err and "ordinal" in err


def test_plugins_lists_name_version_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    main(["plugins"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "VERSION", "DISTRIBUTION", "STATUS"]
    synthetic = next(line for line in out if line.startswith("synthetic "))
    assert synthetic.split() == ["synthetic", __version__, "micboard-exporter", "ok"]


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: micboard-exporter" in capsys.readouterr().err


@pytest.fixture
def exporter_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text("poll: {interval: 200ms}\ndevices:\n  - {id: one, plugin: synthetic, host: 127.0.0.1}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "micboard_exporter", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}",
         "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("exporter did not become ready")
    yield proc, url, config
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


def test_process_reloads_on_sighup_and_exits_zero_on_sigterm(
    exporter_process: tuple[subprocess.Popen[str], str, Path],
) -> None:
    proc, url, config = exporter_process
    assert 'micboard_device_up{device="one"} 1' in httpx.get(f"{url}/metrics").text
    config.write_text("poll: {interval: 200ms}\ndevices:\n  - {id: two, plugin: synthetic, host: 127.0.0.1}\n")
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while 'micboard_device_up{device="two"} 1' not in httpx.get(f"{url}/metrics").text:
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        time.sleep(0.1)
    assert 'device="one"' not in httpx.get(f"{url}/metrics").text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    output = proc.stdout.read() if proc.stdout else ""
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # --log-format json: every line is one JSON object
    assert any(r["msg"].startswith("SIGHUP received") for r in records)
    assert any(r.get("event") == "device_up" and r.get("device") == "two" for r in records)


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "micboard_exporter", "--config", str(ROOT / "config.example.yaml"),
             "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30, check=False,
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
