"""Push latency and cost of the shure plugin against N simulated ULXD4Q receivers over loopback.

The simulators run in a child process (so their CPU is not counted); the parent runs the real plugin,
feeds every published snapshot into the real :class:`~micboard_exporter.state.StateStore` (which renders
the exposition chunks ``/metrics`` serves) and polls every device every ``--poll-interval`` like the poller.

Lag: the child renames a random channel (an unsolicited ``< REP x CHAN_NAME {Bnnn} >``) and notes the
monotonic time just before it pushes; the parent notes the time once the store has taken a snapshot
carrying that name (any scrape that starts after that instant shows it). ``time.monotonic`` is the same
clock in both processes on Linux. A thread scrapes the store every ``--scrape-interval`` as an HTTP handler
would, so the CPU figures include rendering ``/metrics`` (which the store does lazily, at scrape time).

    .venv/bin/python bench/bench_shure_push.py                                   # 50 receivers, 20 s
    .venv/bin/python bench/bench_shure_push.py -n 500 --duration 300 --meter-rate 1s
    .venv/bin/python bench/bench_shure_push.py -n 500 --duration 300 --meter-rate 100ms
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import random
import resource
import statistics
import sys
import threading
import time
from multiprocessing.connection import Connection
from types import MappingProxyType

import anyio
import anyio.to_thread

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import PollError
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugins.shure import ShurePlugin
from micboard_exporter.simulators.shure import ShureUlxdSimulator
from micboard_exporter.state import StateStore

CHANNELS_PER_RECEIVER = 4


def _raise_fd_limit() -> None:
    # 500 receivers need 500 sockets here and 1,000 in the child (listener + connection).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    del soft


# ------------------------------------------------------------------------------------------ child: fleet


def fleet_process(conn: Connection, receivers: int, changes_per_s: float, seed: int) -> None:
    """Entry point of the simulator process."""
    _raise_fd_limit()
    anyio.run(_fleet, conn, receivers, changes_per_s, seed)


async def _fleet(conn: Connection, receivers: int, changes_per_s: float, seed: int) -> None:
    rng = random.Random(seed)
    sims = [ShureUlxdSimulator(host="127.0.0.1", port=0, model="ULXD4Q", seed=i) for i in range(receivers)]
    async with anyio.create_task_group() as tg:
        for sim in sims:
            await tg.start(sim.serve)
        conn.send([sim.port for sim in sims])
        run_for: float = await anyio.to_thread.run_sync(conn.recv)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_start = usage.ru_utime + usage.ru_stime
        changes: list[tuple[int, float, int, int]] = []
        seq = 0
        start = time.monotonic()
        tg.start_soon(_step_world, sims)
        tg.start_soon(_wander_audio, sims, rng)
        while time.monotonic() < start + run_for:
            await anyio.sleep(rng.expovariate(changes_per_s))
            seq += 1
            index, channel = rng.randrange(receivers), rng.randrange(CHANNELS_PER_RECEIVER)
            sim = sims[index]
            sim.channels[channel].name = f"B{seq}"
            changes.append((seq, time.monotonic(), index, channel))
            sim.changed()
        await anyio.sleep(0.3)  # let the last renames leave before the fleet stops
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send((changes, usage.ru_utime + usage.ru_stime - cpu_start))
        await anyio.to_thread.run_sync(conn.recv)  # serve until the exporter side has closed its sessions
        tg.cancel_scope.cancel()


async def _step_world(sims: list[ShureUlxdSimulator]) -> None:
    """RF wanders and batteries drain: each receiver once a second, in slices
    of a tenth so the simulator process never stalls its own pushes for long."""
    slices = 10
    while True:
        for part in range(slices):
            await anyio.sleep(1.0 / slices)
            for sim in sims[part::slices]:
                sim.step(1.0)


async def _wander_audio(sims: list[ShureUlxdSimulator], rng: random.Random) -> None:
    """Programme audio moves all the time: a new level every 100 ms, so (nearly) every SAMPLE differs, as
    on a live receiver. This is the expensive case for the exporter."""
    channels = [ch for sim in sims for ch in sim.channels]
    while True:
        await anyio.sleep(0.1)
        for ch in channels:
            ch.audio_rms_dbfs = min(-6.0, max(-60.0, -24.0 + rng.gauss(0.0, 6.0)))


# ------------------------------------------------------------------------------------------ parent: exporter


class Probe:
    """The ``publish`` callable: store first (as the exporter does), then note when each name showed up."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.seen: dict[int, float] = {}
        self.publishes = 0

    def __call__(self, device_id: str, snapshot: DeviceSnapshot) -> None:
        self.store.publish(device_id, snapshot)
        now = time.monotonic()
        self.publishes += 1
        for ch in snapshot.channels:
            name = ch.name
            if name and name[0] == "B" and name[1:].isdigit():
                self.seen.setdefault(int(name[1:]), now)


async def _poll_all(plugin: ShurePlugin, store: StateStore, devices: list[DeviceConfig]) -> int:
    limiter = anyio.CapacityLimiter(64)
    failures = 0

    async def one(dev: DeviceConfig) -> None:
        nonlocal failures
        async with limiter:
            try:
                store.record_success(dev.id, await plugin.poll(dev))
            except PollError as exc:
                failures += 1
                store.record_failure(dev.id, exc.reason, str(exc))
                if failures <= 3:
                    print(f"poll failed: {exc}", file=sys.stderr)

    async with anyio.create_task_group() as tg:
        for dev in devices:
            tg.start_soon(one, dev)
    return failures


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _main(args: argparse.Namespace) -> int:
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    child = ctx.Process(target=fleet_process, args=(child_conn, args.receivers, args.changes_per_s, args.seed))
    child.start()
    try:
        ports: list[int] = await anyio.to_thread.run_sync(parent_conn.recv)
        options = MappingProxyType({"family": "ulxd", "meter_rate": args.meter_rate})
        devices = [
            DeviceConfig(id=f"rx{i:04d}", plugin="shure", host="127.0.0.1", port=port, options=options)
            for i, port in enumerate(ports)
        ]
        store = StateStore()
        store.set_devices(devices)
        probe = Probe(store)
        plugin = ShurePlugin(publish=probe)
        failures = await _poll_all(plugin, store, devices)
        if failures:
            print(f"warning: {failures} receivers failed the first poll", file=sys.stderr)
        await anyio.sleep(args.warmup)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        ru_start = resource.getrusage(resource.RUSAGE_SELF)
        wall_start = time.monotonic()
        publishes_start = probe.publishes
        parent_conn.send(args.duration)
        poll_failures = 0
        cycles: list[float] = []
        async with anyio.create_task_group() as tg:

            async def poller() -> None:
                nonlocal poll_failures
                while True:
                    await anyio.sleep(args.poll_interval)
                    started = time.monotonic()
                    poll_failures += await _poll_all(plugin, store, devices)
                    cycles.append(time.monotonic() - started)

            def scrape_forever() -> None:
                while not stop_scraping.wait(args.scrape_interval):
                    store.scrape_bytes()

            stop_scraping = threading.Event()
            scraper = threading.Thread(target=scrape_forever, name="scraper", daemon=True)
            scraper.start()
            tg.start_soon(poller)
            changes: list[tuple[int, float, int, int]]
            changes, fleet_cpu = await anyio.to_thread.run_sync(parent_conn.recv)
            await anyio.sleep(0.5)  # let the last pushes land
            stop_scraping.set()
            await anyio.to_thread.run_sync(scraper.join)
            tg.cancel_scope.cancel()
        wall = time.monotonic() - wall_start
        ru_end = resource.getrusage(resource.RUSAGE_SELF)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        publishes = probe.publishes - publishes_start
        scrape_bytes = len(store.scrape())
        await plugin.aclose()
        parent_conn.send("stop")
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()

    lags = [(probe.seen[seq] - t) * 1000 for seq, t, _, _ in changes if seq in probe.seen]
    # A rename overwritten by the next rename of the same channel before it was read is coalesced into one
    # snapshot (one publish per read), which is correct: only the newest name matters.
    last_seq: dict[tuple[int, int], int] = {}
    superseded = 0
    for seq, _, index, channel in reversed(changes):
        later = last_seq.get((index, channel))
        if seq not in probe.seen and later is not None and later in probe.seen:
            superseded += 1
        last_seq[(index, channel)] = seq
    missing = len(changes) - len(lags) - superseded
    if missing and args.verbose:
        end = max(t for _, t, _, _ in changes)
        for seq, t, index, channel in changes:
            if seq not in probe.seen:
                print(f"not seen: B{seq} rx{index:04d} ch{channel + 1} {end - t:.3f} s before the end", file=sys.stderr)
    cpu = (ru_end.ru_utime - ru_start.ru_utime) + (ru_end.ru_stime - ru_start.ru_stime)
    channels = args.receivers * CHANNELS_PER_RECEIVER
    cpu_per_k_min = cpu / (channels / 1000) / (wall / 60)
    half = len(lags) // 2
    rows = [
        ("receivers / channels", f"{args.receivers} / {channels}"),
        ("meter rate", args.meter_rate),
        ("measured for", f"{wall:.1f} s"),
        ("pushed changes seen / coalesced / missing", f"{len(lags)} / {superseded} / {missing}"),
        ("lag p50", f"{_percentile(lags, 0.50):.1f} ms" if lags else "-"),
        ("lag p99", f"{_percentile(lags, 0.99):.1f} ms" if lags else "-"),
        ("lag max", f"{max(lags):.1f} ms" if lags else "-"),
        ("lag p99 1st half / 2nd half", (
            f"{_percentile(lags[:half], 0.99):.1f} / {_percentile(lags[half:], 0.99):.1f} ms" if half else "-")),
        ("lag mean", f"{statistics.fmean(lags):.1f} ms" if lags else "-"),
        ("published snapshots / s", f"{publishes / wall:.0f}"),
        ("poll cycles: failures / longest", f"{poll_failures} / {max(cycles, default=0) * 1000:.0f} ms"),
        ("CPU (exporter process)", f"{cpu:.1f} s = {cpu / wall * 100:.0f} % of one core"),
        ("CPU s per 1,000 channels per minute", f"{cpu_per_k_min:.2f}"),
        ("CPU (simulator process, not counted)", f"{fleet_cpu:.1f} s = {fleet_cpu / wall * 100:.0f} % of one core"),
        ("peak RSS (exporter process)", f"{ru_end.ru_maxrss / 1024:.0f} MiB"),
        ("/metrics device text", f"{scrape_bytes / 1024:.0f} KiB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0 if lags and not missing else 1


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--receivers", type=int, default=50, help="simulated ULXD4Q receivers (default 50)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--meter-rate", default="1s", help="plugin meter_rate option, e.g. 1s, 100ms, 0")
    parser.add_argument("--changes-per-s", type=float, default=20.0, help="pushed renames per second (fleet)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between poll cycles")
    parser.add_argument("--scrape-interval", type=float, default=1.0,
                        help="seconds between scrapes of the store (rendering /metrics is part of the cost)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds after the first poll before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="list changes that never showed up")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the exporter process to FILE")
    args = parser.parse_args(argv)
    _raise_fd_limit()
    return anyio.run(_main, args)


if __name__ == "__main__":
    sys.exit(main())
