"""End to end: simulated receivers -> micboard-exporter -> real Prometheus (our rules) -> real Alertmanager
(our example config) -> a webhook owned by the test; and every dashboard query against that Prometheus.

A pack is driven to critical battery and another transmitter is switched off mid-use; the pager webhook
must receive MicBatteryCritical and MicTransmitterLost naming the performer and the channel, then the
resolved notifications once both are restored. Prometheus scrapes every second and the rules are
generated with two-second ``for:`` values, so the whole run takes well under a minute.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
import yaml

from micboard_exporter.simulators.shure import ShureUlxdSimulator

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DEADLINE_S = 150.0

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: `apt-get install -y prometheus prometheus-alertmanager`")
    return path


def _wait_until(what: str, check: Callable[[], bool], timeout: float, processes: list[subprocess.Popen[bytes]]) -> None:
    """Poll ``check`` every 0.25 s; fail with ``what`` (and any process that died) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in processes:
            if proc.poll() is not None:
                pytest.fail(f"{proc.args!r} exited with {proc.returncode} while waiting for {what}:\n{_log_tail(proc)}")
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.25)
    logs = "\n".join(_log_tail(proc) for proc in processes)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


_LOGS: dict[int, Path] = {}


def _log_tail(proc: subprocess.Popen[bytes], lines: int = 15) -> str:
    log = _LOGS.get(proc.pid)
    if log is None or not log.exists():
        return ""
    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"--- {log.name}\n" + "\n".join(tail)


class Webhook:
    """An HTTP server on loopback that records Alertmanager's webhook payloads by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer._lock:
                    outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reports what it received."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert in every notification sent to ``path`` so far."""
        with self._lock:
            return [alert for p, payload in self.received if p == path for alert in payload["alerts"]]

    def find(self, path: str, alertname: str, status: str, channel: str) -> dict[str, Any] | None:
        """The first notified alert with that name, status and channel."""
        for alert in self.alerts(path):
            labels = alert["labels"]
            if labels["alertname"] == alertname and alert["status"] == status and labels.get("channel") == channel:
                return alert
        return None


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with output to ``log``; terminate (then kill) it when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        _LOGS[proc.pid] = log
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _alertmanager_config(webhook: Webhook) -> dict[str, Any]:
    """The shipped example config, with its receivers pointed at the test and its waits shortened."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "alerts" / "alertmanager.example.yml").read_text(encoding="utf-8"))
    route = config["route"]
    route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for child in route["routes"]:
        if "group_wait" in child:
            child["group_wait"] = "1s"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{webhook.port}/{receiver['name']}"
    return config


def _substitute(expr: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(f"${{{name}:text}}", variables[name]).replace(f"${name}", variables[name])
    return expr


def _dashboard_queries(variables_for: Callable[[str], dict[str, str]]) -> list[tuple[str, str, str]]:
    """(dashboard, where, PromQL) for every panel target and every query variable, variables substituted."""
    out = []
    for path in DASHBOARDS:
        model = json.loads(path.read_text(encoding="utf-8"))
        values = variables_for(model["uid"])
        for variable in model["templating"]["list"]:
            if variable["type"] != "query":
                continue
            text = _substitute(variable["query"], values)
            # Grafana's own functions around PromQL: label_values(selector, label) and query_result(expr).
            if text.startswith("label_values("):
                selector, label = text[len("label_values("):-1].rsplit(",", 1)
                text = f"count by ({label.strip()}) ({selector.strip()})"
            elif text.startswith("query_result("):
                text = text[len("query_result("):-1]
            out.append((model["uid"], f"variable {variable['name']}", text))
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                out.append((model["uid"], f"{panel['title']} [{target['refId']}]", _substitute(target["expr"], values)))
    return out


def _instant(client: httpx.Client, expr: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _exporter_config(sim: ShureUlxdSimulator) -> str:
    return f"""
poll: {{interval: 1s, timeout: 1s, retries: 0}}
defaults: {{shure: {{reply_timeout: 300ms, reconnect_max: 500ms}}}}
devices:
  - id: stage
    plugin: shure
    host: 127.0.0.1
    port: {sim.port}
    labels: {{room: main-hall}}
    options: {{family: ulxd, model: {sim.model}}}
    channels:
      1: {{slot: 1, name: "Pastor Mike"}}
      2: {{slot: 2}}
  - id: synth
    plugin: synthetic
    host: 127.0.0.2
    labels: {{room: studio}}
    options: {{seed: 7, channels: 2, lively: false, drain_speed: 0}}
    channels:
      1: {{slot: 3, name: "Guest"}}
"""


def test_alerts_reach_the_pager_and_every_dashboard_query_returns_data(tmp_path: Path) -> None:
    started = time.monotonic()
    prometheus, alertmanager = _binary("prometheus"), _binary("prometheus-alertmanager")
    exporter_port, prometheus_port, alertmanager_port = _free_port(), _free_port(), _free_port()

    rules = tmp_path / "rules.yml"
    gen = subprocess.run([sys.executable, str(ROOT / "alerts" / "generate.py"), "--output", str(rules), "--for", "2s"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert gen.returncode == 0, gen.stderr

    sim = ShureUlxdSimulator(seed=11, model="ULXD4D")
    sim.channels[0].name, sim.channels[1].name = "Vocal 1", "Lectern"
    sim.channels[0].battery_ratio = 0.9
    # Channel 2 runs on AA cells: the receiver reports bars only, so the bars-only path is exercised too.
    sim.channels[1].battery_type, sim.channels[1].battery_ratio = "ALKA", 0.8

    with (
        anyio.from_thread.start_blocking_portal() as portal,
        Webhook() as webhook,
    ):
        serving, _ = portal.start_task(sim.serve)
        try:
            (tmp_path / "exporter.yml").write_text(_exporter_config(sim), encoding="utf-8")
            (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(_alertmanager_config(webhook)), encoding="utf-8")
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "micboard", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]},
                ],
            }), encoding="utf-8")
            with (
                _process([sys.executable, "-m", "micboard_exporter", "run",
                          "--config", str(tmp_path / "exporter.yml"), "--listen", f"127.0.0.1:{exporter_port}"],
                         tmp_path / "exporter.log") as exporter_proc,
                # No cluster listener: Alertmanager would otherwise bind 0.0.0.0:9094 for gossip.
                _process([alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}",
                          f"--storage.path={tmp_path / 'am-data'}",
                          f"--web.listen-address=127.0.0.1:{alertmanager_port}", "--cluster.listen-address="],
                         tmp_path / "alertmanager.log") as am_proc,
                _process([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                          f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                          f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                         tmp_path / "prometheus.log") as prom_proc,
                httpx.Client(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=5) as prom,
            ):
                procs = [exporter_proc, am_proc, prom_proc]
                _run_scenario(tmp_path, portal, sim, webhook, prom, procs, started)
        finally:
            serving.cancel()
    assert time.monotonic() - started < DEADLINE_S + 30


def _run_scenario(
    tmp_path: Path, portal: anyio.from_thread.BlockingPortal, sim: ShureUlxdSimulator, webhook: Webhook,
    prom: httpx.Client, procs: list[subprocess.Popen[bytes]], started: float,
) -> None:
    def remaining() -> float:
        return max(5.0, DEADLINE_S - (time.monotonic() - started))

    def change(edit: Callable[[], None]) -> None:
        def apply() -> None:
            edit()
            sim.changed()

        portal.call(apply)

    _wait_until("Prometheus to be ready", lambda: prom.get("/-/ready").status_code == 200, remaining(), procs)
    # Both receivers scraped, tiles recorded, and enough samples for rate() over the dashboards' window.
    _wait_until("the wall-board tiles", lambda: len(_instant(prom, "micboard:wallboard_tile:info")) == 3,
                remaining(), procs)
    _wait_until("two rule evaluations of poll rates", lambda: bool(_instant(
        prom, "rate(micboard_poll_duration_seconds_count[1m]) > 0")), remaining(), procs)
    _wait_until("ten seconds of history", lambda: bool(_instant(prom, "count_over_time(micboard_device_up[1m]) >= 8")),
                remaining(), procs)

    # --- every dashboard query, with its template variables substituted, parses and returns data ---------
    def variables_for(uid: str) -> dict[str, str]:
        single_device = {"micboard-channel": "synth"}
        return {"room": ".*", "device": single_device.get(uid, ".*"), "channel": "1", "instance": ".*",
                "tile": ".*", "__rate_interval": "1m"}

    queries = _dashboard_queries(variables_for)
    assert {uid for uid, _, _ in queries} == {p.stem for p in DASHBOARDS}
    assert len(queries) > 50
    empty = [(uid, where, expr) for uid, where, expr in queries if not _instant(prom, expr)]
    assert empty == [], "dashboard queries without data:\n" + "\n".join(f"{u}: {w}: {e}" for u, w, e in empty)

    # --- mid-show: channel 1's pack falls to critical, channel 2's transmitter goes away -----------------
    def trouble() -> None:
        sim.channels[0].battery_ratio = 0.05
        sim.channels[1].transmitter_on = False

    change(trouble)
    _wait_until(
        "MicBatteryCritical and MicTransmitterLost at the pager",
        lambda: webhook.find("/pager", "MicBatteryCritical", "firing", "1") is not None
        and webhook.find("/pager", "MicTransmitterLost", "firing", "2") is not None,
        remaining(), procs,
    )
    critical = webhook.find("/pager", "MicBatteryCritical", "firing", "1")
    lost = webhook.find("/pager", "MicTransmitterLost", "firing", "2")
    assert critical is not None and lost is not None
    assert critical["labels"]["severity"] == "critical"
    assert critical["labels"]["room"] == "main-hall"
    assert "Pastor Mike" in critical["annotations"]["description"]
    assert '"Vocal 1"' in critical["annotations"]["description"]
    assert "channel 1 of stage in main-hall" in critical["annotations"]["description"]
    assert critical["annotations"]["runbook_url"].endswith("docs/runbooks.md#micbatterycritical")
    assert '"Lectern" (channel 2 of stage in main-hall)' in lost["annotations"]["description"]
    assert lost["annotations"]["summary"] == "A wireless transmitter that was in use has disappeared."

    # --- the pack is swapped and the transmitter is back: both resolve -----------------------------------
    def restored() -> None:
        sim.channels[0].battery_ratio = 0.95
        sim.channels[1].transmitter_on = True

    change(restored)
    _wait_until(
        "resolved notifications at the pager",
        lambda: webhook.find("/pager", "MicBatteryCritical", "resolved", "1") is not None
        and webhook.find("/pager", "MicTransmitterLost", "resolved", "2") is not None,
        remaining(), procs,
    )
    # The receiver stayed up the whole time: nothing paged for it.
    assert all(a["labels"]["alertname"] != "MicReceiverDown" for a in webhook.alerts("/pager"))
