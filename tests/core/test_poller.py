"""The poller against plugins that hang, fail, flap, crash and recover."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import anyio
import pytest
from core_helpers import ScriptedPlugin, reset_scripted

from micboard_exporter.config_types import BreakerConfig, DeviceConfig, PollConfig
from micboard_exporter.poller import Poller, parse_shard_index, select_shard, shard_of
from micboard_exporter.selfmetrics import SelfMetrics
from micboard_exporter.state import StateStore

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_scripted()
    yield
    reset_scripted()


def dev(device_id: str, mode: str = "ok", **options: Any) -> DeviceConfig:
    return DeviceConfig(id=device_id, plugin="scripted", host="127.0.0.1",
                        options=MappingProxyType({"mode": mode, **options}))


def make_poller(devices: list[DeviceConfig], clock: Any = time.monotonic, **poll: Any) -> tuple[Poller, StateStore]:
    store = StateStore()
    store.set_devices(devices)
    poller = Poller(store, SelfMetrics(process=False), clock=clock)
    settings = {"interval": 5.0, "timeout": 0.3, "retries": 0, "retry_backoff": 0.01, **poll}
    poller.configure(PollConfig(**settings), devices, {"scripted": ScriptedPlugin()})
    return poller, store


async def test_hung_devices_do_not_delay_the_others() -> None:
    devices = [dev(f"ok-{i}") for i in range(30)] + [dev(f"hung-{i}", "hang") for i in range(10)]
    poller, store = make_poller(devices, timeout=0.3, batch_size=7)
    started = time.monotonic()
    result = await poller.run_cycle()
    elapsed = time.monotonic() - started
    # Ten hung devices cost about one timeout in total, not ten.
    assert elapsed < 0.3 * 2.5, elapsed
    assert (result.successful, result.failed, result.skipped) == (30, 10, 0)
    assert result.errors == {"timeout": 10}
    assert store.status("ok-3").up  # type: ignore[union-attr]
    hung = store.status("hung-0")
    assert hung is not None and not hung.up and "no answer within 0.3s" in (hung.last_error or "")


async def test_concurrency_limit_is_respected() -> None:
    devices = [dev(f"slow-{i}", delay=0.1) for i in range(8)]
    poller, _ = make_poller(devices, max_concurrency=2, timeout=1.0)
    started = time.monotonic()
    await poller.run_cycle()
    # 8 polls of 0.1 s, two at a time: about 0.4 s.
    assert 0.35 < time.monotonic() - started < 0.9


@pytest.mark.parametrize(
    ("mode", "calls", "reason"),
    [("raise", 3, "unreachable"), ("hang", 3, "timeout"), ("protocol", 1, "protocol"), ("auth", 1, "auth"),
     ("crash", 1, "internal"), ("wrong-type", 1, "internal")],
)
async def test_retries_only_for_transient_errors(mode: str, calls: int, reason: str) -> None:
    poller, store = make_poller([dev("rx", mode)], retries=2, timeout=0.05, retry_backoff=0.01)
    result = await poller.run_cycle()
    assert ScriptedPlugin.calls["rx"] == calls
    assert result.errors == {reason: 1}
    assert f'micboard_poll_errors_total{{device="rx",reason="{reason}"}} 1' in store.scrape()


async def test_retries_stay_within_the_cycle_budget() -> None:
    # interval 0.2 s, timeout 0.1 s: at most one attempt fits, so no retry is started.
    poller, _ = make_poller([dev("rx", "hang")], interval=0.2, timeout=0.1, retries=5)
    await poller.run_cycle()
    assert ScriptedPlugin.calls["rx"] == 1


async def test_breaker_opens_skips_and_closes_on_success() -> None:
    now = [1000.0]
    failing = [dev("rx", "raise")]
    poller, store = make_poller(failing, clock=lambda: now[0], interval=5.0,
                                breaker=BreakerConfig(failures=2, max_interval=12.0))
    assert (await poller.run_cycle()).failed == 1
    assert (await poller.run_cycle()).failed == 1  # second failed cycle opens the breaker
    assert poller.breaker_wait("rx") == 10.0
    skipped = await poller.run_cycle()
    assert (skipped.skipped, ScriptedPlugin.calls["rx"]) == (1, 2)
    now[0] += 10.0
    assert (await poller.run_cycle()).failed == 1  # waited, tried, failed again: wait doubles, capped
    assert poller.breaker_wait("rx") == 12.0
    now[0] += 12.0
    poller.configure(poller._config, [dev("rx", "ok")], {"scripted": ScriptedPlugin()})
    assert (await poller.run_cycle()).successful == 1
    assert poller.breaker_wait("rx") == 0.0
    assert (await poller.run_cycle()).successful == 1  # closed: polled every cycle again
    assert store.status("rx").up  # type: ignore[union-attr]


async def test_flapping_device_emits_up_and_down_events() -> None:
    poller, store = make_poller([dev("rx", "flap")], breaker=BreakerConfig(failures=100))
    for _ in range(6):
        await poller.run_cycle()
    kinds = [e.kind.value for e in store.recent_events]
    assert kinds == ["device_up", "device_down", "device_up", "device_down", "device_up", "device_down"]
    assert 'micboard_events_total{device="rx",event="device_down"} 3' in store.scrape()


async def test_snapshot_id_is_the_config_id() -> None:
    poller, store = make_poller([dev("rx", "other-id")])
    await poller.run_cycle()
    status = store.status("rx")
    assert status is not None and status.up and status.snapshot is not None
    assert status.snapshot.device_id == "rx"


async def test_cycle_result_is_exported() -> None:
    poller, _ = make_poller([dev("a"), dev("b", "protocol")])
    await poller.run_cycle()
    text = poller.metrics.render().decode()
    assert 'micboard_poll_cycle_devices{result="successful"} 1.0' in text
    assert 'micboard_poll_cycle_devices{result="failed"} 1.0' in text
    assert 'micboard_poll_duration_seconds_count{plugin="scripted"} 2.0' in text


async def test_overruns_counted_and_cycles_never_overlap() -> None:
    active = [0]
    peak = [0]

    class Slow(ScriptedPlugin):
        async def poll(self, device: DeviceConfig) -> Any:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            try:
                await anyio.sleep(0.15)
                return await super().poll(device)
            finally:
                active[0] -= 1

    store = StateStore()
    devices = [dev("rx")]
    store.set_devices(devices)
    poller = Poller(store, SelfMetrics(process=False))
    poller.configure(PollConfig(interval=0.1, timeout=1.0), devices, {"scripted": Slow()})
    with anyio.move_on_after(0.8):
        await poller.run()
    assert poller.cycles >= 3
    assert peak[0] == 1
    assert "micboard_poll_cycle_overruns_total" in poller.metrics.render().decode()
    assert poller.metrics.cycle_overruns._value.get() >= 2


def test_shards_partition_the_fleet() -> None:
    devices = [dev(f"rx-{i:04d}") for i in range(3000)]
    shards = [select_shard(devices, i, 3) for i in range(3)]
    ids = [d.id for s in shards for d in s]
    assert sorted(ids) == sorted(d.id for d in devices)  # every device exactly once
    assert all(900 < len(s) < 1100 for s in shards)
    assert shard_of("stage-left", 7) == shard_of("stage-left", 7)  # stable
    assert select_shard(devices, 0, 1) == devices


@pytest.mark.parametrize(("value", "index"), [("0", 0), ("2", 2), ("micboard-exporter-2", 2), ("mx-10", 10)])
def test_shard_index_from_number_or_pod_name(value: str, index: int) -> None:
    assert parse_shard_index(value) == index


def test_shard_index_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="ordinal"):
        parse_shard_index("micboard-exporter")


async def test_a_reload_mid_cycle_drops_stale_outcomes_and_polls() -> None:
    # One worker: "a" is being polled (slowly, and it will fail) when the reload lands; "b" is still queued.
    a_old, b = dev("a", "raise", delay=0.2), dev("b")
    poller, store = make_poller([a_old, b], max_concurrency=1, retries=3)
    plugin = poller._plugins["scripted"]
    a_new = dev("a", "ok")
    async with anyio.create_task_group() as tg:
        cycle: list[Any] = []

        async def run() -> None:
            cycle.append(await poller.run_cycle())

        tg.start_soon(run)
        await anyio.sleep(0.05)
        store.set_devices([a_new])
        poller.configure(poller._config, [a_new], {"scripted": plugin})
    result = cycle[0]
    # The old config's failure is not recorded, not retried, and "b" (gone) was never polled.
    assert ScriptedPlugin.calls == {"a": 1}
    assert (result.successful, result.failed) == (0, 0)
    status = store.status("a")
    assert status is not None and status.consecutive_failures == 0 and status.last_error is None
