"""No output of a real exporter process contains a device password.

The exporter runs as ``python -m micboard_exporter run --log-level debug`` against two SSCv2 simulators that
require a password: one device is given the right one and one a wrong one (both through ``password_env``),
with ``/probe`` enabled. Everything it can be made to say is collected — its whole debug log, ``/metrics``,
``/``, ``/probe`` for both configured devices and for an unconfigured one, health endpoints, a 404, the
answers of a good and of a rejected reload, and ``check-config`` on a good file and on files that are wrong
around the secrets — and searched for both passwords, plain and as they travel in a Basic auth header.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from micboard_exporter.simulators.base import serving
from micboard_exporter.simulators.sennheiser_sscv2 import SennheiserEwdxSimulator

pytestmark = pytest.mark.anyio

RIGHT = "Right-Secret-7f3a9c"
WRONG = "Wrong-Secret-2b8e4d"
ENV = {"EWDX_RIGHT_PW": RIGHT, "EWDX_WRONG_PW": WRONG}
#: Every form a password could leak in: as such, and inside the Authorization header httpx sends.
FORBIDDEN = [
    RIGHT, WRONG,
    *(base64.b64encode(f"api:{pw}".encode()).decode() for pw in (RIGHT, WRONG)),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(right: SennheiserEwdxSimulator, wrong: SennheiserEwdxSimulator, **extra: Any) -> str:
    def entry(device_id: str, sim: SennheiserEwdxSimulator, env: str) -> dict[str, Any]:
        return {"id": device_id, "plugin": "sennheiser-sscv2", "host": "127.0.0.1", "port": sim.port,
                "options": {"verify_tls": False, "password_env": env, "timeout": 2}}

    doc: dict[str, Any] = {
        "poll": {"interval": "300ms", "timeout": "3s", "retries": 0},
        "probe": {"allowed_targets": ["127.0.0.0/8"]},
        "defaults": {"sennheiser-sscv2": {"verify_tls": False, "password_env": "EWDX_RIGHT_PW"}},
        "devices": [entry("ewdx-right", right, "EWDX_RIGHT_PW"), entry("ewdx-wrong", wrong, "EWDX_WRONG_PW")],
        **extra,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def cli(*args: str, cwd: Path) -> str:
    """Run a ``micboard-exporter`` command to completion; its exit status and everything it printed."""
    done = subprocess.run([sys.executable, "-m", "micboard_exporter", *args], cwd=cwd, env={**os.environ, **ENV},
                          capture_output=True, text=True, timeout=60, check=False)
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


async def wait_until(client: httpx.AsyncClient, check: Any, what: str, timeout: float = 30.0) -> str:
    with anyio.fail_after(timeout):
        while True:
            try:
                text = (await client.get("/metrics")).text
            except httpx.TransportError:
                text = ""
            if check(text):
                return text
            await anyio.sleep(0.1)
    raise AssertionError(what)  # pragma: no cover - fail_after raises first


async def test_no_output_of_the_exporter_process_contains_a_password(tmp_path: Path) -> None:
    right = SennheiserEwdxSimulator(seed=31, options={"password": RIGHT})
    wrong = SennheiserEwdxSimulator(seed=32, options={"password": RIGHT})
    outputs: dict[str, str] = {}
    async with serving(right, wrong):
        config = tmp_path / "config.yaml"
        config.write_text(config_text(right, wrong), encoding="utf-8")
        port = free_port()
        log_path = tmp_path / "exporter.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "micboard_exporter", "run", "--config", str(config),
                 "--listen", f"127.0.0.1:{port}", "--log-level", "debug"],
                cwd=tmp_path, env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as c:
                # The right password is accepted (data flows) and the wrong one refused (auth error counted):
                # both secrets really went out to the devices.
                outputs["metrics"] = await wait_until(c, lambda t: 'micboard_device_up{device="ewdx-right"} 1' in t
                                                      and 'micboard_channel_info{device="ewdx-right"' in t
                                                      and 'device="ewdx-wrong",reason="auth"} 1' in t,
                                                      "ewdx-right up and ewdx-wrong refused")
                for name, path in [
                    ("landing", "/"),
                    ("probe-right", f"/probe?target=127.0.0.1:{right.port}&plugin=sennheiser-sscv2"),
                    ("probe-wrong", f"/probe?target=127.0.0.1:{wrong.port}&plugin=sennheiser-sscv2"),
                    ("probe-unconfigured", f"/probe?target=127.0.0.2:{right.port}&plugin=sennheiser-sscv2"),
                    ("probe-refused", "/probe?target=10.1.2.3&plugin=sennheiser-sscv2"),
                    ("healthy", "/-/healthy"), ("ready", "/-/ready"), ("not-found", "/nope"),
                ]:
                    r = await c.get(path)
                    outputs[name] = f"{r.status_code}\n{r.headers}\n{r.text}"
                assert "micboard_probe_success 1" in outputs["probe-right"]
                assert "micboard_probe_success 0" in outputs["probe-wrong"]

                r = await c.post("/-/reload")
                outputs["reload-good"] = f"{r.status_code}\n{r.text}"
                assert r.status_code == 200
                config.write_text(config_text(right, wrong, listen=12), encoding="utf-8")
                r = await c.post("/-/reload")
                outputs["reload-rejected"] = f"{r.status_code}\n{r.text}"
                assert r.status_code == 500
                config.write_text(config_text(right, wrong), encoding="utf-8")
                outputs["metrics-after"] = (await c.get("/metrics")).text
        finally:
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                while proc.poll() is None:
                    await anyio.sleep(0.1)
        outputs["log"] = log_path.read_text(encoding="utf-8")
        assert proc.returncode == 0, outputs["log"][-2000:]

    # The debug log really is at debug level and really talks about the devices and the refusal.
    assert "DEBUG" in outputs["log"] and "ewdx-wrong" in outputs["log"] and "HTTP 401" in outputs["log"]

    # check-config: a good file, and files wrong right around the secrets.
    outputs["check-good"] = cli("check-config", str(config), cwd=tmp_path)
    assert outputs["check-good"].startswith("exit 0")
    doc = yaml.safe_load(config.read_text())
    doc["devices"][0]["options"]["password"] = RIGHT  # inline passwords are refused
    doc["devices"][1]["options"]["password_env"] = "EWDX_NOT_SET"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    outputs["check-bad"] = cli("check-config", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert outputs["check-bad"].startswith("exit 1") and "password" in outputs["check-bad"]
    (tmp_path / "pw.txt").write_text(WRONG)
    doc = yaml.safe_load(config.read_text())
    doc["devices"][0]["options"]["password_env"] = "EWDX_NOT_SET"  # a secret that cannot be resolved...
    doc["devices"][1]["options"] = {"verify_tls": False, "password_file": "pw.txt"}  # ...next to one that can
    (tmp_path / "bad2.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    outputs["check-bad-2"] = cli("check-config", str(tmp_path / "bad2.yaml"), cwd=tmp_path)
    assert outputs["check-bad-2"].startswith("exit 1") and "EWDX_NOT_SET" in outputs["check-bad-2"]

    leaks = [(name, secret) for name, text in outputs.items() for secret in FORBIDDEN if secret in text]
    assert leaks == [], f"password leaked into: {leaks}"
