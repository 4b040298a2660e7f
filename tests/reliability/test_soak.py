"""Soak: 500 simulated devices for ``MICBOARD_SOAK_SECONDS`` (default 600, at most 600), with faults
switched on and off at random on the devices that speak real protocols and a config reload every 30 s.

120 devices speak real protocols over loopback (ULX-D, QLX-D, SLX-D, Axient Digital and UHF-R over TCP/UDP
2202; EW-DX over HTTPS with its event stream; EW-DX SSC v1 over UDP), the other 380 are ``synthetic``. After a
warm-up (a fifth of the run, at least 30 s, with the same faults and reloads) it clears every fault, reloads
the warm-up config, waits for every device and records the process's RSS, open file descriptors and running
asyncio tasks; the rest of the run follows, ends the same quiet way, and the two records are compared:

- RSS grew by at most 10 % over the warm-up figure. Each measurement follows a full garbage collection and
  hands the C heap's free pages back to the system first (``malloc_trim``): glibc keeps freed memory, and
  the churn of TLS buffers and socket reads leaves it scattered, so raw RSS reports the high-water mark as
  much as memory in use. The raw figures, the peak over the run and Python's allocated blocks are reported
  beside it;
- the exporter's open file descriptors are where they were (a few HTTPS keep-alive connections may come or
  go: each EW-DX session keeps 1 to 4 depending on recent concurrency), and so are its asyncio tasks. The
  simulators share the process; their sockets and tasks are counted apart (they follow the exporter's: a
  simulator connection ends when the exporter closes it, a UHF-R simulator meters a controller address until
  it has been silent for 30 s, so reconnections just before a measurement still show there);
- nothing was logged at ERROR: the injected faults are device failures, which the exporter logs below
  ERROR; an ERROR line means an exporter bug.

Marked ``soak`` and deselected by default; see tests/reliability/README.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from reliability_helpers import exporter_running, open_fds, rss_bytes, running_tasks, scrape, value

from micboard_exporter.simulators.base import SimulatedDevice
from micboard_exporter.simulators.fleet import simulator_kinds

pytestmark = [pytest.mark.anyio, pytest.mark.soak]

MAX_SECONDS = 600
SECONDS = int(os.environ.get("MICBOARD_SOAK_SECONDS", "600"))
RELOAD_EVERY = 30.0
#: Real-protocol simulators by kind (120 devices); the rest of the 500 are synthetic.
REAL: dict[str, int] = {"shure-ulxd": 20, "shure-qlxd": 10, "shure-slxd": 10, "shure-axtd": 10, "shure-uhfr": 10,
                        "sennheiser-ewdx": 30, "sennheiser-ssc": 30}
TOTAL = 500
#: Faults per protocol family: what each simulator can do wrong. Not the Shure simulator's byte-at-a-time
#: modes: its writer crashes when the exporter resets a dripping connection (reported; test_faults covers
#: the drip against one device).
FAULTS: dict[str, tuple[str, ...]] = {
    "shure": ("stall", "garbage", "close_mid_frame", "refuse"),
    "sennheiser-sscv2": ("stall", "refuse", "garbage", "close_mid_frame"),
    "sennheiser-ssc": ("stall", "garbage", "refuse"),
}
POLL = {"interval": "5s", "timeout": "4s", "max_concurrency": 128, "retries": 1,
        "breaker": {"failures": 3, "max_interval": "20s"}}


@dataclass
class Soak:
    """The fleet, the two configs it alternates between, and what happened."""

    sims: dict[str, SimulatedDevice] = field(default_factory=dict)
    faulted: dict[str, float] = field(default_factory=dict)  # device id -> when its fault ends
    faults_injected: int = 0
    reloads: int = 0
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)  # time, rss, fds, tasks
    censuses: list[Counter[str]] = field(default_factory=list)  # tasks by coroutine at each quiet point
    exporter_fds: list[int] = field(default_factory=list)  # fds apart from the simulators' at each quiet point
    untrimmed_rss: list[int] = field(default_factory=list)  # RSS at each quiet point before release_free_heap
    python_blocks: list[int] = field(default_factory=list)  # blocks Python's allocator has in use, likewise

    def __post_init__(self) -> None:
        kinds = simulator_kinds()
        seed = 100
        for kind, count in REAL.items():
            for i in range(count):
                seed += 1
                # Two-channel EW-DX receivers: a full read is 21 requests instead of 41, which keeps the
                # simulators and the exporter (one event loop here) within the poll timeout.
                model = "EWDX2CHS" if kind == "sennheiser-ewdx" else None
                # The simulators' records of requests (for other tests to inspect) fill during the warm-up.
                self.sims[f"{kind}-{i}"] = kinds[kind](seed=seed, model=model, record_limit=100)

    def config(self, variant: int) -> str:
        """Variant 0 is the warm-up config; variant 1 relabels half the fleet, renames channels, drops ten
        synthetic devices and adds ten others (their sessions and series go and come)."""
        devices: list[dict[str, Any]] = []
        for index, (device_id, sim) in enumerate(self.sims.items()):
            entry = sim.exporter_device(device_id)
            if sim.plugin == "shure":
                entry["options"] = {**entry.get("options", {}), "meter_rate": "0"}
            if variant and index % 2:
                entry["labels"] = {"room": "hall"}
                entry["channels"] = {1: {"slot": index + 1, "name": f"Lead {index}"}}
            devices.append(entry)
        synthetic = TOTAL - len(devices)
        first = 10 if variant else 0
        for i in range(first, first + synthetic):
            devices.append({"id": f"synth-{i}", "plugin": "synthetic", "host": f"127.0.{i // 250}.{i % 250 + 1}",
                            "options": {"seed": i, "channels": 1 + i % 4, "drain_speed": 5}})
        return yaml.safe_dump({"poll": POLL, "devices": devices}, sort_keys=False)


def set_fault(sim: SimulatedDevice, fault: str, on: bool) -> None:
    if fault == "drip":
        sim.faults.drip_interval = 0.5 if on else 0.0
    else:
        setattr(sim.faults, fault, on)


async def inject_faults(soak: Soak, rng: random.Random) -> None:
    """Every second: end the faults that are due, and start a random fault on a random healthy device
    (about one in eight of the real devices is faulty at any time, for 3-20 s each)."""
    active: dict[str, str] = {}
    while True:
        now = anyio.current_time()
        for device_id, ends in list(soak.faulted.items()):
            if ends <= now:
                set_fault(soak.sims[device_id], active.pop(device_id), False)
                del soak.faulted[device_id]
        while len(soak.faulted) < len(soak.sims) // 8:
            device_id = rng.choice([d for d in soak.sims if d not in soak.faulted])
            sim = soak.sims[device_id]
            fault = rng.choice(FAULTS[sim.plugin])
            set_fault(sim, fault, True)
            active[device_id] = fault
            soak.faulted[device_id] = now + rng.uniform(3, 20)
            soak.faults_injected += 1
        await anyio.sleep(1.0)


def clear_faults(soak: Soak) -> None:
    for sim in soak.sims.values():
        for fault in ("stall", "garbage", "close_mid_frame", "refuse", "split_bytes"):
            setattr(sim.faults, fault, False)
        sim.faults.drip_interval = 0.0
    soak.faulted.clear()


async def step_physics(soak: Soak) -> None:
    """Batteries drain, RF and audio wander, transmitters come and go: pushed updates flow all the time."""
    while True:
        await anyio.sleep(1.0)
        for sim in soak.sims.values():
            sim.step(1.0)


def task_census() -> Counter[str]:
    """Running asyncio tasks by coroutine, to say *what* grew when the count does."""
    census: Counter[str] = Counter()
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        # anyio runs task-group children inside its own wrapper coroutine: name what it wraps.
        inner = getattr(getattr(getattr(coro, "cr_frame", None), "f_locals", {}).get("self"), "_coro", None)
        coro = inner if inner is not None else coro
        code = getattr(coro, "cr_code", None)
        side = "simulator" if code is not None and "simulators" in Path(code.co_filename).parts else "exporter"
        census[f"{side}:{getattr(coro, '__qualname__', type(coro).__name__)}"] += 1
    return census


def exporter_tasks(census: Counter[str]) -> int:
    """Tasks that are not the simulators' (a UHF-R simulator serves a controller address until it has been
    silent for 30 s, so its count follows the exporter's recent reconnections, not a leak)."""
    return sum(n for name, n in census.items() if not name.startswith("simulator:"))


def exporter_fds(simulator_ports: set[int]) -> int:
    """Open file descriptors other than the simulators' own sockets (their listeners and their ends of
    connections, which mirror the exporter's: its keep-alive pools count once, on its side)."""
    theirs: set[str] = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for row in Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) in simulator_ports:
                theirs.add(f"socket:[{fields[9]}]")
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += str(fd.readlink()) not in theirs
        except OSError:
            continue  # closed while listing
    return count


def sample(soak: Soak) -> tuple[float, int, int, int]:
    point = (time.monotonic(), rss_bytes(), open_fds(), running_tasks())
    soak.samples.append(point)
    return point


class ErrorRecords(logging.Handler):
    """Keeps the exporter's ERROR records, and only those. The injected faults make the exporter log
    thousands of warnings; a handler that kept them all (pytest's log capture does, tracebacks and the
    frames they hold included) would itself be the memory growth the soak measures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def exporter_errors() -> Iterator[ErrorRecords]:
    """Collect the exporter's ERROR records; nothing below ERROR is even formatted meanwhile."""
    logger = logging.getLogger("micboard_exporter")
    handler, level, propagate = ErrorRecords(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def object_census() -> Counter[str]:
    """Live container objects by type (what the garbage collector tracks: cheap enough at a quiet point)."""
    return Counter(type(o).__name__ for o in gc.get_objects())


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``). Freed memory stays in the
    process until then, scattered between live blocks by the churn of TLS buffers and socket reads; RSS
    without this step measures that high-water mark as much as memory in use."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def largest_containers(count: int = 4) -> str:
    """The longest lists, dicts and deques alive, with the type of what they hold: a record that only grows
    shows up here long before it shows in RSS."""
    sized = [(len(o), type(o).__name__, type(next(iter(o))).__name__) for o in gc.get_objects()
             if isinstance(o, list | dict | collections.deque) and len(o) > 1000]
    return ", ".join(f"{kind}[{item}] x{length}" for length, kind, item in sorted(sized, reverse=True)[:count])


@pytest.mark.timeout(MAX_SECONDS + 300)
async def test_soak(tmp_path: Path) -> None:
    assert 60 <= SECONDS <= MAX_SECONDS, f"MICBOARD_SOAK_SECONDS must be 60..{MAX_SECONDS}, got {SECONDS}"
    warm_up = max(30.0, SECONDS / 5)
    soak = Soak()
    rng = random.Random(20261127)  # the same fault schedule every run
    async with anyio.create_task_group() as sims:
        for sim in soak.sims.values():
            await sims.start(sim.serve)
        with exporter_errors() as logged:
            async with exporter_running(soak.config(0), tmp_path) as (_, client, path):
                await all_up(client, "start")
                # Warm-up, then the measured run: the same mix of faults and reloads; each ends quiet and on
                # the warm-up config, so the two measurements compare like with like.
                await stormy(soak, client, path, rng, warm_up)
                baseline = await quiet(soak, client, path, "after the warm-up")
                objects_before = object_census()
                await stormy(soak, client, path, rng, SECONDS - warm_up)
                end = await quiet(soak, client, path, "at the end")
                objects_grew = object_census() - objects_before
                largest = largest_containers()
        sims.cancel_scope.cancel()

    errors = logged.records
    peak_rss = max(s[1] for s in soak.samples)
    report = (f"soak {SECONDS}s: {soak.faults_injected} faults, {soak.reloads} reloads; "
              f"RSS {baseline[1] / 1e6:.1f} -> {end[1] / 1e6:.1f} MB (before releasing free heap "
              f"{soak.untrimmed_rss[0] / 1e6:.1f} -> {soak.untrimmed_rss[-1] / 1e6:.1f}, peak {peak_rss / 1e6:.1f}); "
              f"Python blocks {soak.python_blocks[0]} -> {soak.python_blocks[-1]}; "
              f"fds {baseline[2]} -> {end[2]}; tasks {baseline[3]} -> {end[3]}; ERROR lines {len(errors)}")
    grew = soak.censuses[-1] - soak.censuses[0]
    before, after = exporter_tasks(soak.censuses[0]), exporter_tasks(soak.censuses[-1])
    fds_before, fds_after = soak.exporter_fds[0], soak.exporter_fds[-1]
    report += (f"; exporter fds {fds_before} -> {fds_after}, exporter tasks {before} -> {after}; "
               f"tasks that grew: {dict(grew.most_common(6))}; "
               f"objects that grew: {dict(objects_grew.most_common(6))}; largest containers: {largest}")
    print(report)  # noqa: T201 - these figures are what a soak run reports (run with -s to see them)
    assert soak.faults_injected >= SECONDS // 10 and soak.reloads >= SECONDS // RELOAD_EVERY - 1, report
    assert end[1] <= baseline[1] * 1.10, report
    assert fds_after <= fds_before + max(8, fds_before // 50), report
    assert after <= before, report
    assert errors == [], [r.getMessage()[:300] for r in errors[:5]]


async def stormy(soak: Soak, client: Any, path: Path, rng: random.Random, seconds: float) -> None:
    """``seconds`` of random faults, physics and a reload every 30 s, scraping every second meanwhile."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(step_physics, soak)
        tg.start_soon(inject_faults, soak, rng)
        started = anyio.current_time()
        next_reload = started + RELOAD_EVERY
        variant = 0
        while anyio.current_time() - started < seconds:
            await anyio.sleep(1.0)
            samples = await scrape(client)  # the exporter keeps serving all along
            assert value(samples, "micboard_devices_configured") == TOTAL
            if anyio.current_time() >= next_reload:
                variant = 1 - variant
                path.write_text(soak.config(variant), encoding="utf-8")
                r = await client.post("/-/reload")
                assert r.status_code == 200, r.text
                soak.reloads += 1
                next_reload += RELOAD_EVERY
            if len(soak.samples) < 10_000:
                sample(soak)
        tg.cancel_scope.cancel()


async def quiet(soak: Soak, client: Any, path: Path, what: str) -> tuple[float, int, int, int]:
    """Clear every fault, go back to the warm-up config, wait for every device, let sessions settle, sample."""
    clear_faults(soak)
    path.write_text(soak.config(0), encoding="utf-8")
    r = await client.post("/-/reload")
    assert r.status_code == 200, r.text
    soak.reloads += 1
    await all_up(client, what)
    await anyio.sleep(2 * 5.0)  # two poll intervals: sessions settled, keep-alive pools at working size
    # Both measurements of live memory, not of how much cyclic garbage (an exception's traceback holds its
    # frames, which hold the exception) happens to wait for the collector's next full pass.
    gc.collect()
    soak.untrimmed_rss.append(rss_bytes())
    soak.python_blocks.append(sys.getallocatedblocks())
    release_free_heap()
    soak.censuses.append(task_census())
    soak.exporter_fds.append(exporter_fds({sim.port for sim in soak.sims.values()}))
    return sample(soak)


async def all_up(client: Any, what: str, timeout: float = 120.0) -> None:
    """Wait (bounded) until every device is up; name the ones that are not when it times out."""
    down: list[str] = []
    samples: dict[Any, float] = {}
    try:
        with anyio.fail_after(timeout):
            while True:
                samples = await scrape(client)
                down = sorted(dict(labels)["device"] for (name, labels), v in samples.items()
                              if name == "micboard_device_up" and v != 1)
                if not down and value(samples, "micboard_devices_configured") == TOTAL:
                    return
                await anyio.sleep(1.0)
    except TimeoutError:
        reasons = {dict(labels)["reason"]: v for (name, labels), v in samples.items()
                   if name == "micboard_poll_errors_total" and down and dict(labels).get("device") == down[0]}
        raise AssertionError(f"{what}: {len(down)} devices still down after {timeout:g} s: {down[:20]} "
                             f"(errors of {down[0] if down else '-'}: {reasons})") from None
