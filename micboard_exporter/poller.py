"""Background polling: cycles, batches, a concurrency limit, timeouts, retries and a circuit breaker.

Every ``interval`` the poller runs one cycle over the devices of its shard. ``max_concurrency`` workers
(the capacity limit, as a pool rather than a task and a ``CapacityLimiter`` per device, which costs a
third of the cycle time at 10,000 devices) take devices from the cycle's queue in order; workers start
in batches of ``batch_size`` with an event-loop checkpoint between batches, and each attempt is bounded by
``timeout``, so one hung device never delays the others: a cycle takes about one timeout, not the sum.
Transient errors (timeout, unreachable) are retried with exponential backoff and full jitter while the
cycle has time left; protocol and auth errors are not.
After ``breaker.failures`` consecutive failed cycles a device waits doubling intervals up to
``breaker.max_interval`` (counted as skipped); one success closes the breaker. Cycles never overlap: an
overrun is counted and the next cycle starts at the next interval boundary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
from prometheus_client import Histogram

from micboard_exporter.config_types import DeviceConfig, PollConfig
from micboard_exporter.errors import DeviceTimeout, PollError
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugin import Plugin
from micboard_exporter.selfmetrics import SelfMetrics
from micboard_exporter.state import StateStore

log = logging.getLogger(__name__)


def shard_of(device_id: str, shard_count: int) -> int:
    """Stable shard of a device id (SHA-256, so it is the same in every process and release)."""
    digest = hashlib.sha256(device_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def parse_shard_index(value: str) -> int:
    """``3`` → 3; a StatefulSet pod name ``micboard-exporter-3`` → 3 (its trailing ordinal)."""
    match = re.fullmatch(r"(?:.*-)?(\d+)", value.strip())
    if not match:
        raise ValueError(f"{value!r} is neither a number nor a name ending in -<ordinal>")
    return int(match.group(1))


def select_shard(devices: Sequence[DeviceConfig], index: int, count: int) -> list[DeviceConfig]:
    """The devices that shard ``index`` of ``count`` polls."""
    if count <= 1:
        return list(devices)
    return [d for d in devices if shard_of(d.id, count) == index]


@dataclass(frozen=True, slots=True)
class PollingResult:
    """The outcome of one cycle."""

    successful: int
    failed: int
    skipped: int
    duration: float
    errors: Mapping[str, int] = field(default_factory=dict)
    """Failed devices by reason."""

    def summary(self) -> str:
        """One log line."""
        errs = " ".join(f"{k}={v}" for k, v in sorted(self.errors.items()))
        return (
            f"poll cycle done in {self.duration:.3f}s: {self.successful} successful, {self.failed} failed, "
            f"{self.skipped} skipped" + (f" (errors: {errs})" if errs else "")
        )


@dataclass(slots=True)
class _Breaker:
    failed_cycles: int = 0
    next_attempt: float = 0.0
    wait: float = 0.0


class Poller:
    """Runs poll cycles over a device list with a set of plugin instances."""

    def __init__(
        self,
        store: StateStore,
        metrics: SelfMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._devices: list[DeviceConfig] = []
        self._current: dict[str, DeviceConfig] = {}
        """The running config's devices by id; a poll of any other version of a device is stale."""
        self._plugins: Mapping[str, Plugin] = {}
        self._config = PollConfig()
        self._breakers: dict[str, _Breaker] = {}
        self._duration_children: dict[str, Histogram] = {}
        self.last_result: PollingResult | None = None
        self.cycles = 0

    def configure(self, config: PollConfig, devices: Sequence[DeviceConfig], plugins: Mapping[str, Plugin]) -> None:
        """Adopt new settings; takes effect from the next cycle (a running cycle finishes as it started)."""
        self._config = config
        # Plugins get the plugin view: a relabel is then not a config change to them (no reconnect) and does
        # not make a running poll stale.
        self._devices = [d.for_plugin() for d in devices]
        self._current = {d.id: d for d in self._devices}
        self._plugins = dict(plugins)
        ids = {d.id for d in devices}
        self._breakers = {k: v for k, v in self._breakers.items() if k in ids}

    # --------------------------------------------------------------------------------- cycles

    async def run_cycle(self) -> PollingResult:
        """Poll every due device once; return and record the result."""
        config, devices, plugins = self._config, self._devices, self._plugins
        started = self._clock()
        deadline = started + config.interval
        outcomes: dict[str, str | None] = {}
        due: list[DeviceConfig] = []
        skipped = 0
        for device in devices:
            breaker = self._breakers.get(device.id)
            if breaker is not None and breaker.next_attempt > started:
                skipped += 1
            else:
                due.append(device)
        queue = iter(due)  # shared by the workers; next() cannot interleave on one event loop
        async with anyio.create_task_group() as tg:
            for started_workers in range(1, min(config.max_concurrency, len(due)) + 1):
                tg.start_soon(self._worker, queue, plugins, deadline, outcomes)
                if started_workers % config.batch_size == 0:
                    await anyio.lowlevel.checkpoint()
        errors: dict[str, int] = {}
        for reason in outcomes.values():
            if reason is not None:
                errors[reason] = errors.get(reason, 0) + 1
        failed = sum(errors.values())
        result = PollingResult(
            successful=len(outcomes) - failed,
            failed=failed,
            skipped=skipped,
            duration=self._clock() - started,
            errors=errors,
        )
        self._record(result)
        return result

    def _record(self, result: PollingResult) -> None:
        self.last_result = result
        self.cycles += 1
        m = self.metrics
        m.cycle_duration.set(result.duration)
        m.cycle_devices.labels("successful").set(result.successful)
        m.cycle_devices.labels("failed").set(result.failed)
        m.cycle_devices.labels("skipped").set(result.skipped)
        log.info(result.summary())
        self.store.ready = True

    async def _worker(
        self, queue: Iterator[DeviceConfig], plugins: Mapping[str, Plugin], deadline: float,
        outcomes: dict[str, str | None],
    ) -> None:
        for device in queue:
            if self._stale(device):
                continue  # a reload removed or changed it after this cycle started: don't reopen its session
            await self._poll_device(device, plugins[device.plugin], deadline, outcomes)

    def _stale(self, device: DeviceConfig) -> bool:
        return self._current.get(device.id) != device

    async def _poll_device(
        self,
        device: DeviceConfig,
        plugin: Plugin,
        deadline: float,
        outcomes: dict[str, str | None],
    ) -> None:
        config = self._config
        started = self._clock()
        attempt = 0
        while True:
            error: PollError | None = None
            reason: str
            try:
                with anyio.fail_after(config.timeout):
                    snapshot = await plugin.poll(device)
            except TimeoutError:
                error = DeviceTimeout(f"{device.address}: no answer within {config.timeout:g}s")
                reason = error.reason
            except PollError as exc:
                error, reason = exc, exc.reason
            except Exception as exc:  # a plugin bug must not take the poller down (logged below)
                log.exception("plugin %s crashed polling %s", device.plugin, device.id)
                reason = "internal"
                message = f"internal error in plugin {device.plugin}: {type(exc).__name__}: {exc}"
                self._fail(device, reason, message, outcomes)
                break
            else:
                self._succeed(device, snapshot, outcomes)
                break
            delay = self._rng.uniform(0.0, config.retry_backoff * (2**attempt))
            if (
                error.transient
                and attempt < config.retries
                and self._clock() + delay + config.timeout <= deadline
                and not self._stale(device)
            ):
                attempt += 1
                log.debug("retrying %s after %s (attempt %d)", device.id, error, attempt + 1)
                await anyio.sleep(delay)
                continue
            self._fail(device, reason, str(error), outcomes)
            break
        self._durations(device.plugin).observe(self._clock() - started)

    def _succeed(self, device: DeviceConfig, snapshot: object, outcomes: dict[str, str | None]) -> None:
        if self._stale(device):
            return  # the outcome of a config that is no longer running says nothing about the device now
        if not isinstance(snapshot, DeviceSnapshot):
            self._fail(device, "internal", f"plugin {device.plugin} returned {type(snapshot).__name__}, "
                                           "not a DeviceSnapshot", outcomes)
            return
        if snapshot.device_id != device.id:
            # The config id is the identity everywhere downstream, whatever the plugin filled in.
            snapshot = dataclasses.replace(snapshot, device_id=device.id)
        outcomes[device.id] = None
        breaker = self._breakers.pop(device.id, None)
        if breaker is not None and breaker.wait > 0:
            log.info("device %s recovered; circuit breaker closed", device.id)
        self.store.record_success(device.id, snapshot)

    def _fail(self, device: DeviceConfig, reason: str, message: str, outcomes: dict[str, str | None]) -> None:
        if self._stale(device):
            return  # e.g. a session closed by the reload that changed the device: not a device failure
        outcomes[device.id] = reason
        config = self._config
        breaker = self._breakers.setdefault(device.id, _Breaker())
        breaker.failed_cycles += 1
        if breaker.failed_cycles >= config.breaker.failures:
            breaker.wait = min(
                config.breaker.max_interval,
                config.interval * 2 ** (breaker.failed_cycles - config.breaker.failures + 1),
            )
            breaker.next_attempt = self._clock() + breaker.wait
            if breaker.failed_cycles == config.breaker.failures:
                log.info("device %s failed %d cycles in a row; polling it every %.0fs at most until it answers",
                         device.id, breaker.failed_cycles, breaker.wait)
        self.store.record_failure(device.id, reason, message)

    def _durations(self, plugin: str) -> Histogram:
        child = self._duration_children.get(plugin)
        if child is None:
            child = self._duration_children[plugin] = self.metrics.poll_duration.labels(plugin)
        return child

    def breaker_wait(self, device_id: str) -> float:
        """Seconds the device waits between polls while its breaker is open (0 when closed)."""
        breaker = self._breakers.get(device_id)
        return breaker.wait if breaker else 0.0

    # --------------------------------------------------------------------------------- loop

    async def run(self) -> None:
        """Run cycles forever, one at a time, on interval boundaries."""
        origin = self._clock()
        while True:
            started = self._clock()
            await self.run_cycle()
            interval = self._config.interval
            elapsed = self._clock() - started
            if elapsed > interval:
                self.metrics.cycle_overruns.inc()
                log.warning("poll cycle took %.2fs, longer than the %.2fs interval", elapsed, interval)
            # Next boundary of the schedule strictly after now: an overrun skips ticks, never overlaps.
            now = self._clock()
            next_start = origin + interval * (math.floor((now - origin) / interval) + 1)
            await anyio.sleep(max(0.0, next_start - now))

