"""Reload safety: 100 reloads through ``POST /-/reload``, half of them valid and half invalid, while the
exporter polls Shure, Sennheiser (SSCv2 with its event stream, SSC v1) and synthetic devices and a client
scrapes ``/metrics`` without pause.

- no scrape ever misses the devices present in every config: each shows ``micboard_device_up 1``, its
  identity and its channel series;
- an invalid file never stops polling: after each one the stable devices' freshness still advances;
- nothing leaks: after the last reload (back to the first config) the process has the open file
  descriptors and running asyncio tasks it had before the loop, the simulators of devices that left hold no
  connection and no SSCv2 subscription session, and the ones that stayed hold exactly one each.

Invalid files include the kinds that once crashed the loader (a section of the wrong type, a non-scalar
key; see tests/fuzz/README.md) besides syntax, schema and semantic errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from reliability_helpers import exporter_running, running_tasks

from micboard_exporter.simulators.base import serving
from micboard_exporter.simulators.sennheiser_ssc import SennheiserSscSimulator
from micboard_exporter.simulators.sennheiser_sscv2 import SennheiserEwdxSimulator
from micboard_exporter.simulators.shure import ShureUlxdSimulator

pytestmark = pytest.mark.anyio

RELOADS = 100
POLL = {"interval": "200ms", "timeout": "2s", "retries": 2, "retry_backoff": "50ms"}
STABLE = ("shure-a", "ewdx-a", "ssc-a", "synth-a")


class Fleet:
    """The simulators and the config entries that point at them."""

    def __init__(self) -> None:
        self.shure_a, self.shure_b = ShureUlxdSimulator(seed=11), ShureUlxdSimulator(seed=12)
        self.ewdx_a, self.ewdx_b = SennheiserEwdxSimulator(seed=13), SennheiserEwdxSimulator(seed=14)
        self.ssc_a = SennheiserSscSimulator(seed=15)

    @property
    def all(self) -> tuple[Any, ...]:
        return self.shure_a, self.shure_b, self.ewdx_a, self.ewdx_b, self.ssc_a

    def entry(self, device_id: str, **extra: Any) -> dict[str, Any]:
        sims = {"shure-a": self.shure_a, "shure-b": self.shure_b, "ewdx-a": self.ewdx_a, "ewdx-b": self.ewdx_b,
                "ssc-a": self.ssc_a}
        if device_id == "synth-a":
            entry: dict[str, Any] = {"id": "synth-a", "plugin": "synthetic", "host": "127.0.0.1",
                                     "options": {"channels": 2}}
        else:
            entry = sims[device_id].exporter_device(device_id)
        if device_id.startswith("shure"):
            entry["options"] = {**entry.get("options", {}), "meter_rate": "0"}
        entry.update(extra)
        return entry

    def stable(self, **extra_by_id: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.entry(d, **extra_by_id.get(d, {})) for d in STABLE]


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def valid_configs(fleet: Fleet) -> list[str]:
    """Four valid configs, all with the stable devices: alone, with two more devices, with changed labels and
    channel names on every protocol (those devices' sessions are closed and reopened under their polls: the
    poller drops an interrupted poll's outcome rather than marking the device down), and with other poll
    settings."""
    base = {"poll": POLL}
    return [
        dump({**base, "devices": fleet.stable()}),
        dump({**base, "devices": [*fleet.stable(), fleet.entry("shure-b"), fleet.entry("ewdx-b")]}),
        dump({**base, "devices": [*fleet.stable(**{
            "ewdx-a": {"labels": {"room": "hall"}, "channels": {1: {"slot": 1, "name": "Vox"}}},
            "shure-a": {"labels": {"room": "hall"}, "channels": {2: {"slot": 2, "name": "Keys"}}},
            "ssc-a": {"labels": {"room": "hall"}},
            "synth-a": {"labels": {"room": "hall"}}}), fleet.entry("shure-b")]}),
        dump({"poll": {**POLL, "interval": "250ms", "max_concurrency": 8}, "devices": [*fleet.stable(),
                                                                                        fleet.entry("ewdx-b")]}),
    ]


def invalid_configs(fleet: Fleet) -> list[tuple[str, str]]:
    """Invalid configs and a piece of the reason the exporter must give."""
    good = fleet.stable()

    def with_devices(devices: list[dict[str, Any]], **top: Any) -> str:
        return dump({"poll": POLL, **top, "devices": devices})

    unset = fleet.entry("ewdx-b", options={"verify_tls": False, "password_env": "MICBOARD_RELOAD_TEST_UNSET_PW"})
    return [
        (dump({"poll": POLL, "devices": good})[:-40] + "\n  - {id: [", "YAML syntax error"),
        (with_devices([*good, {"id": "x", "plugin": "no-such-plugin", "host": "127.0.0.1"}]), "unknown plugin"),
        (with_devices([*good, fleet.entry("shure-a")]), "duplicate device id"),
        (with_devices([*good[1:], {k: v for k, v in good[0].items() if k != "host"}]), "devices[3].host"),
        (with_devices(good, poll={**POLL, "interval": "fast"}), "poll.interval"),
        (with_devices(good, polling={"interval": "1s"}), "unknown key"),
        (with_devices([*good, unset]), "MICBOARD_RELOAD_TEST_UNSET_PW"),
        (with_devices([*good[:-1], {**good[-1], "port": 70000}]), "devices[3].port"),
        (dump({"poll": True, "devices": good}), "poll"),
        (dump({"poll": POLL, "devices": good}) + "[a, b]: c\n", "keys must be plain names or numbers"),
    ]


def fds_apart_from(port: int) -> int:
    """Open file descriptors of this process, leaving out TCP connections to or from ``port``.

    The test's own HTTP client to the exporter keeps or drops its connection as keep-alive timing has it;
    every other descriptor (device sessions, listeners, files) must be the same before and after.
    """
    skip: set[str] = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            ports = {int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)}
            if port in ports:
                skip.add(f"socket:[{fields[9]}]")
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue  # closed while listing
        count += target not in skip
    return count


def by_device(text: str) -> dict[str, dict[str, float]]:
    """``{device: {metric name: number of samples (or the value of device_up / freshness)}}``."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            device = sample.labels.get("device")
            if device is None:
                continue
            seen = out.setdefault(device, {})
            if sample.name in ("micboard_device_up", "micboard_device_last_success_timestamp_seconds"):
                seen[sample.name] = sample.value
            else:
                seen[sample.name] = seen.get(sample.name, 0) + 1
    return out


class Watcher:
    """Scrapes without pause and records every scrape in which a stable device is missing or down."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.scrapes = 0
        self.gaps: list[str] = []
        self.latest: dict[str, dict[str, float]] = {}

    async def run(self) -> None:
        while True:
            r = await self.client.get("/metrics")
            assert r.status_code == 200
            self.latest = seen = by_device(r.text)
            self.scrapes += 1
            for device in STABLE:
                got = seen.get(device, {})
                missing = [m for m in ("micboard_device_info", "micboard_channel_info") if not got.get(m)]
                if got.get("micboard_device_up") != 1 or missing:
                    self.gaps.append(f"scrape {self.scrapes}: {device} up={got.get('micboard_device_up')} "
                                     f"missing={missing}")
            await anyio.sleep(0.005)

    def freshness(self) -> dict[str, float]:
        return {d: self.latest.get(d, {}).get("micboard_device_last_success_timestamp_seconds", 0.0)
                for d in STABLE}


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)
    assert check(), what


async def test_100_reloads_half_invalid_while_polling_and_scraping(tmp_path: Path) -> None:
    fleet = Fleet()
    async with serving(*fleet.all):
        valid, invalid = valid_configs(fleet), invalid_configs(fleet)
        async with exporter_running(valid[0], tmp_path) as (exporter, client, path), \
                anyio.create_task_group() as tg:
            watcher = Watcher(client)
            tg.start_soon(watcher.run)
            await eventually(lambda: watcher.scrapes > 0 and all(
                watcher.latest.get(d, {}).get("micboard_device_up") == 1 for d in STABLE), "stable devices up")
            await anyio.sleep(1.0)  # every session open, the SSCv2 pools at their working size
            watcher.gaps.clear()
            assert exporter.http is not None
            http_port = exporter.http.port
            fds_before, tasks_before = fds_apart_from(http_port), running_tasks()

            started = time.monotonic()
            for i in range(RELOADS):
                ok = i % 2 == 0
                # The valid ones cycle so that the last one is the first config again.
                text, reason = (valid[(RELOADS // 2 - 1 - i // 2) % len(valid)], "") if ok else \
                    invalid[(i // 2) % len(invalid)]
                path.write_text(text, encoding="utf-8")
                asked = time.time()
                r = await client.post("/-/reload")
                assert r.status_code == (200 if ok else 500), (i, r.text)
                if not ok:
                    assert str(path) in r.text and reason in r.text, (i, r.text)
                assert exporter.metrics.reload_successful._value.get() == (1 if ok else 0)
                # Polling goes on, the invalid file notwithstanding: every stable device is fresher than the
                # moment the reload was asked for.
                await eventually(lambda t=asked: all(f > t for f in watcher.freshness().values()),  # type: ignore[misc]
                                 f"stable devices polled after reload {i} ({'valid' if ok else 'invalid'})")
            elapsed = time.monotonic() - started

            # Back on the first config: the devices that left are gone and closed everywhere.
            await eventually(lambda: set(watcher.latest) == set(STABLE), "only the stable devices exported")
            await eventually(lambda: fleet.shure_b.open_connections == 0, "shure-b connection closed")
            await eventually(lambda: fleet.ewdx_b.active_sessions == [], "ewdx-b subscription deleted")
            await eventually(lambda: len(fleet.ewdx_a.active_sessions) == 1, "ewdx-a holds one subscription")
            await eventually(lambda: fleet.shure_a.open_connections == 1, "shure-a holds one connection")
            # A poll in flight (an SSCv2 full re-read runs a score of GETs) is not a leak: wait for a moment
            # between polls, when everything but the long-lived sessions has finished. A leak never settles.
            await eventually(lambda: running_tasks() <= tasks_before and fds_apart_from(http_port) <= fds_before,
                             "tasks and fds back to where they were", timeout=10.0)
            fds_after, tasks_after = fds_apart_from(http_port), running_tasks()
            tg.cancel_scope.cancel()

    assert watcher.gaps == [], f"{len(watcher.gaps)} scrapes missed a stable device, first: {watcher.gaps[:5]}"
    assert watcher.scrapes > RELOADS
    assert tasks_after == tasks_before, (tasks_before, tasks_after)
    assert fds_after == fds_before, (fds_before, fds_after)
    assert elapsed < 60, elapsed
