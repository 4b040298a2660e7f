"""Core benchmarks for issue 2, each reported against a baseline measured in the same run.

1. scrape:  /metrics for N devices x 4 channels (synthetic, poller running) versus a plain prometheus_client
            custom collector (GaugeMetricFamily per metric) over the same snapshots, both over HTTP.
2. cycle:   one poll cycle of M synthetic devices versus calling the plugin's poll() for each device in a
            plain loop (the plugin's own cost): the difference is the exporter's overhead. Peak RSS too.
3. publish: P devices publish once a second; a scraper in another process (as Prometheus is) GETs /metrics
            right after a publish; the time from publish() to the end of the first response that shows
            it (p50/p99). This includes one whole scrape of the fleet.

Run: ``python bench/bench_core.py`` (defaults are the issue's sizes) or ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import multiprocessing
import resource
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import MetricsHandler

from micboard_exporter.app import Exporter
from micboard_exporter.config_types import DeviceConfig, PollConfig
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugins.synthetic import SyntheticPlugin
from micboard_exporter.poller import Poller
from micboard_exporter.registry import PluginRegistry
from micboard_exporter.selfmetrics import SelfMetrics
from micboard_exporter.state import StateStore


def synthetic_devices(n: int, channels: int = 4) -> list[DeviceConfig]:
    return [
        DeviceConfig(
            id=f"rx-{i:05d}",
            plugin="synthetic",
            host=f"127.0.{i // 250}.{i % 250 + 1}",
            labels=MappingProxyType({"room": f"room-{i % 20}"}),
            options=MappingProxyType({"seed": i, "channels": channels}),
        )
        for i in range(n)
    ]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - loopback URL built here
        return bytes(resp.read())


def timed_gets(url: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        get(url)
        times.append(time.perf_counter() - started)
    return times


class BaselineCollector:
    """The plain way: a GaugeMetricFamily per metric, built on every scrape from the snapshots."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        statuses = self.store.devices()
        fams: dict[str, GaugeMetricFamily] = {}

        def fam(name: str, labels: list[str]) -> GaugeMetricFamily:
            if name not in fams:
                fams[name] = GaugeMetricFamily(name, f"{name} (baseline)", labels=labels)
            return fams[name]

        for st in statuses:
            dev = st.device_id
            fam("micboard_device_up", ["device"]).add_metric([dev], 1 if st.up else 0)
            snap = st.snapshot
            if snap is None or not st.up:
                continue
            fam("micboard_device_info", ["device", "manufacturer", "model", "firmware", "serial", "host"]).add_metric(
                [
                    dev,
                    snap.manufacturer or "",
                    snap.model or "",
                    snap.firmware or "",
                    snap.serial or "",
                    snap.host or "",
                ],
                1,
            )
            if st.last_success is not None:
                fam("micboard_device_last_success_timestamp_seconds", ["device"]).add_metric([dev], st.last_success)
            for ch in snap.channels:
                c = str(ch.number)
                fam("micboard_channel_info", ["device", "channel", "name"]).add_metric([dev, c, ch.name or ""], 1)
                values: dict[str, Any] = {
                    "micboard_channel_frequency_hertz": ch.frequency_hertz,
                    "micboard_transmitter_present": ch.transmitter is not None,
                    "micboard_rf_link_quality_ratio": ch.link_quality_ratio,
                    "micboard_rf_interference_detected": ch.interference,
                    "micboard_encryption_error": ch.encryption_error,
                    "micboard_audio_level_dbfs": ch.audio_level_dbfs,
                    "micboard_audio_peak_dbfs": ch.audio_peak_dbfs,
                    "micboard_rf_dropouts_total": ch.rf_dropouts,
                    "micboard_audio_clips_total": ch.audio_clips,
                }
                tx = ch.transmitter
                if tx is not None:
                    fam("micboard_transmitter_info", ["device", "channel", "model", "battery_type"]).add_metric(
                        [dev, c, tx.model or "", tx.battery_type or ""], 1
                    )
                    for field in dataclasses.fields(tx):
                        v = getattr(tx, field.name)
                        if isinstance(v, (int, float)):
                            values[f"micboard_transmitter_{field.name}"] = v
                for name, v in values.items():
                    if v is not None:
                        fam(name, ["device", "channel"]).add_metric([dev, c], float(v))
                for ant, dbm in ch.rf_dbm.items():
                    fam("micboard_rf_signal_strength_dbm", ["device", "channel", "antenna"]).add_metric(
                        [dev, c, ant], dbm
                    )
                for ant, on in ch.antenna_active.items():
                    fam("micboard_rf_antenna_active", ["device", "channel", "antenna"]).add_metric(
                        [dev, c, ant], 1 if on else 0
                    )
        return fams.values()


def serve_baseline(store: StateStore) -> tuple[ThreadingHTTPServer, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BaselineCollector(store))  # type: ignore[arg-type]
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler.factory(registry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/metrics"


@asynccontextmanager
async def synthetic_exporter(n: int, tmp: Path, *, interval: str) -> AsyncIterator[tuple[Exporter, str]]:
    """A whole exporter on a free loopback port polling ``n`` synthetic 4-channel receivers; yields its URL."""
    config = tmp / f"synthetic-{n}-{interval}.yaml"
    lines = [f"poll: {{interval: {interval}, timeout: 5s, max_concurrency: 512}}", "devices:"]
    lines += [
        f"  - {{id: rx-{i:05d}, plugin: synthetic, host: 127.0.0.1, labels: {{room: room-{i % 20}}}, "
        f"options: {{seed: {i}, channels: 4}}}}"
        for i in range(n)
    ]
    config.write_text("\n".join(lines) + "\n")
    exporter = Exporter(config, PluginRegistry.discover(), listen="127.0.0.1:0")
    async with anyio.create_task_group() as tg:
        await exporter.apply(exporter.load())
        await tg.start(lambda task_status: exporter.run(handle_signals=False, task_status=task_status))
        while not exporter.store.ready:
            await anyio.sleep(0.05)
        assert exporter.http is not None
        yield exporter, f"http://127.0.0.1:{exporter.http.port}/metrics"
        tg.cancel_scope.cancel()


async def bench_scrape(n: int, repeat: int, tmp: Path) -> dict[str, Any]:
    async with synthetic_exporter(n, tmp, interval="1s") as (exporter, ours_url):
        baseline_server, baseline_url = serve_baseline(exporter.store)
        size_ours = len(await anyio.to_thread.run_sync(get, ours_url))
        size_base = len(await anyio.to_thread.run_sync(get, baseline_url))
        # Interleave the two so drift on the machine affects both alike.
        ours: list[float] = []
        base: list[float] = []
        for _ in range(repeat):
            ours += await anyio.to_thread.run_sync(timed_gets, ours_url, 1)
            base += await anyio.to_thread.run_sync(timed_gets, baseline_url, 1)
        baseline_server.shutdown()
        baseline_server.server_close()
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    return {
        "devices": n,
        "channels": n * 4,
        "bytes_ours": size_ours,
        "bytes_baseline": size_base,
        "median_ours_s": m_ours,
        "median_baseline_s": m_base,
        "speedup": m_base / m_ours,
    }


async def bench_cycle(n: int) -> dict[str, Any]:
    devices = synthetic_devices(n)
    # Baseline: the plugin's own cost, polled in a plain loop.
    plain = SyntheticPlugin()
    for d in devices:
        await plain.poll(d)  # warm up per-device state, as the poller's first cycle would
    started = time.perf_counter()
    for d in devices:
        await plain.poll(d)
    plugin_only = time.perf_counter() - started
    store = StateStore()
    store.set_devices(devices)
    poller = Poller(store, SelfMetrics(process=False))
    plugin = SyntheticPlugin(publish=store.publish)
    poller.configure(
        PollConfig(interval=60.0, timeout=30.0, max_concurrency=1024, batch_size=100), devices, {"synthetic": plugin}
    )
    await poller.run_cycle()  # first cycle renders every device; steady state is what matters
    gc.collect()
    cycles = []
    for _ in range(3):
        result = await poller.run_cycle()
        cycles.append(result.duration)
    cycle = statistics.median(cycles)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "devices": n,
        "cycle_s": cycle,
        "plugin_only_s": plugin_only,
        "overhead_s": cycle - plugin_only,
        "peak_rss_mb": rss_mb,
    }


def _scrape_on_request(url: str, conn: Any) -> None:
    """Scraper process: for each (marker, t0) received, GET /metrics at once and report when it was seen.

    A separate process, as Prometheus is, so the scraper's own parsing does not compete with the exporter
    for the GIL. ``time.perf_counter`` is CLOCK_MONOTONIC on Linux, comparable across processes."""
    while True:
        request = conn.recv()
        if request is None:
            return
        marker, t0 = request
        while True:
            body = get(url)
            if marker.encode() in body:
                conn.send((t0, time.perf_counter()))
                break


async def bench_publish(n: int, seconds: float, tmp: Path) -> dict[str, Any]:
    lags: list[float] = []
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    async with synthetic_exporter(n, tmp, interval="30s") as (exporter, url):
        scraper = ctx.Process(target=_scrape_on_request, args=(url, there), daemon=True)
        scraper.start()
        snaps = {d.device_id: d.snapshot for d in exporter.store.devices()}
        ids = list(snaps)
        seq = 0
        tick = 0.01
        per_tick = max(1, round(n * tick))  # n devices once a second, spread over the second
        deadline = time.perf_counter() + seconds
        waiting = False
        while time.perf_counter() < deadline:
            for _ in range(per_tick):
                dev = ids[seq % n]
                snap = snaps[dev]
                assert isinstance(snap, DeviceSnapshot)
                seq += 1
                ch = dataclasses.replace(snap.channels[0], name=f"m{seq}")
                exporter.store.publish(dev, dataclasses.replace(snap, channels=(ch, *snap.channels[1:])))
                if not waiting:
                    # Ask the scraper to look for this publish right away; one question in flight at a time.
                    here.send((f'name="m{seq}"', time.perf_counter()))
                    waiting = True
            if waiting and here.poll():
                t0, seen = here.recv()
                lags.append(seen - t0)
                waiting = False
            await anyio.sleep(tick)
        if waiting:
            t0, seen = await anyio.to_thread.run_sync(here.recv)
            lags.append(seen - t0)
        here.send(None)
        await anyio.to_thread.run_sync(scraper.join, 10)
    lags.sort()
    return {
        "devices": n,
        "published": seq,
        "measured": len(lags),
        "p50_ms": 1000 * lags[len(lags) // 2],
        "p99_ms": 1000 * lags[max(0, int(len(lags) * 0.99) - 1)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--only", choices=["cycle", "scrape", "publish"], action="append", help="run only these benchmarks (repeatable)"
    )
    args = parser.parse_args()
    scrape_n, cycle_n, publish_n, publish_s, repeat = (
        (100, 500, 100, 2.0, 5) if args.quick else (2500, 10_000, 2500, 20.0, 21)
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        only = set(args.only or ["cycle", "scrape", "publish"])
        results: dict[str, dict[str, Any]] = {}
        # The cycle benchmark runs first so the process' peak RSS is its own.
        if "cycle" in only:
            results["cycle"] = anyio.run(bench_cycle, cycle_n)
        if "scrape" in only:
            results["scrape"] = anyio.run(bench_scrape, scrape_n, repeat, Path(tmp))
        if "publish" in only:
            results["publish"] = anyio.run(bench_publish, publish_n, publish_s, Path(tmp))
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def report(results: dict[str, dict[str, Any]]) -> None:
    """Print one line per benchmark that ran."""
    if "scrape" in results:
        s = results["scrape"]
        print(
            f"scrape   {s['devices']} devices x 4 ch: ours {s['median_ours_s'] * 1000:.1f} ms "
            f"({s['bytes_ours'] / 1e6:.1f} MB), GaugeMetricFamily baseline {s['median_baseline_s'] * 1000:.1f} ms "
            f"({s['bytes_baseline'] / 1e6:.1f} MB): {s['speedup']:.1f}x faster (target >= 10x)"
        )
    if "cycle" in results:
        c = results["cycle"]
        print(
            f"cycle    {c['devices']} devices: cycle {c['cycle_s']:.3f} s, plugin alone {c['plugin_only_s']:.3f} s, "
            f"exporter overhead {c['overhead_s']:.3f} s (target <= 1 s); peak RSS {c['peak_rss_mb']:.0f} MB "
            f"(target <= 300 MB)"
        )
    if "publish" in results:
        p = results["publish"]
        print(
            f"publish  {p['devices']} devices publishing 1/s: {p['measured']} samples, p50 {p['p50_ms']:.1f} ms, "
            f"p99 {p['p99_ms']:.1f} ms (target p99 <= 50 ms)"
        )


if __name__ == "__main__":
    sys.exit(main())
