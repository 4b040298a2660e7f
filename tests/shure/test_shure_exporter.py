"""The whole exporter with the shure plugin and simulated receivers: /metrics, pushes, faults, recovery."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
import yaml
from shure_helpers import running

from micboard_exporter.app import Exporter
from micboard_exporter.plugins.shure import ShurePlugin
from micboard_exporter.registry import PluginRegistry
from micboard_exporter.simulators.fleet import Fleet, parse_fleet
from micboard_exporter.simulators.shure import ShureQlxdSimulator, ShureUlxdSimulator


@asynccontextmanager
async def exporter_for(config: str, tmp_path: Path) -> AsyncIterator[tuple[Exporter, httpx.AsyncClient]]:
    """The exporter on a free loopback port, with the shure plugin only, until the block ends."""
    path = tmp_path / "config.yaml"
    path.write_text(config, encoding="utf-8")
    exporter = Exporter(path, PluginRegistry.from_classes(ShurePlugin), listen="127.0.0.1:0", environ={})
    async with anyio.create_task_group() as tg:
        await exporter.apply(exporter.load())
        await tg.start(lambda task_status: exporter.run(handle_signals=False, task_status=task_status))
        assert exporter.http is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{exporter.http.port}", timeout=5) as client:
            yield exporter, client
        tg.cancel_scope.cancel()


def _config(ulxd: ShureUlxdSimulator, qlxd: ShureQlxdSimulator, *, interval: str) -> str:
    return f"""
poll: {{interval: {interval}, timeout: 1s, retries: 0}}
defaults: {{shure: {{reply_timeout: 300ms, reconnect_max: 500ms}}}}
devices:
  - {{id: stage, plugin: shure, host: 127.0.0.1, port: {ulxd.port}, options: {{family: ulxd, meter_rate: "0"}}}}
  - {{id: lectern, plugin: shure, host: 127.0.0.1, port: {qlxd.port}, options: {{family: qlxd}}}}
"""


async def _metric_until(client: httpx.AsyncClient, pattern: str, timeout: float = 5.0) -> str:
    """Scrape /metrics until a line matches ``pattern``; return that line."""
    regex = re.compile(pattern, re.MULTILINE)
    with anyio.fail_after(timeout):
        while True:
            text = (await client.get("/metrics")).text
            if match := regex.search(text):
                return match.group(0)
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_pushed_change_reaches_metrics_without_waiting_for_a_poll(tmp_path: Path) -> None:
    ulxd, qlxd = ShureUlxdSimulator(seed=1, model="ULXD4D"), ShureQlxdSimulator(seed=2)
    async with running(ulxd, qlxd), exporter_for(_config(ulxd, qlxd, interval="1m"), tmp_path) as (_, client):
        await _metric_until(client, r'^micboard_device_up\{device="stage"\} 1$')
        await _metric_until(client, r'^micboard_device_up\{device="lectern"\} 1$')
        bars = ulxd.channels[1].battery_bars
        await _metric_until(client, rf'^micboard_transmitter_battery_bars\{{device="stage",channel="2"\}} {bars}$')
        # The next poll is a minute away: only the unsolicited REP can bring this to /metrics.
        ulxd.channels[1].battery_ratio = 0.1
        start = anyio.current_time()
        ulxd.changed()
        await _metric_until(client, r'^micboard_transmitter_battery_bars\{device="stage",channel="2"\} 1$', 1.0)
        assert anyio.current_time() - start < 1.0
        ulxd.channels[1].transmitter_on = False
        ulxd.changed()
        await _metric_until(client, r'^micboard_transmitter_present\{device="stage",channel="2"\} 0$', 1.0)


@pytest.mark.anyio
async def test_stalled_receiver_goes_down_with_reason_and_comes_back(tmp_path: Path) -> None:
    ulxd, qlxd = ShureUlxdSimulator(seed=3, model="ULXD4"), ShureQlxdSimulator(seed=4)
    async with running(ulxd, qlxd), exporter_for(_config(ulxd, qlxd, interval="200ms"), tmp_path) as (_, client):
        await _metric_until(client, r'^micboard_device_up\{device="stage"\} 1$')
        ulxd.faults.stall = True
        await _metric_until(client, r'^micboard_device_up\{device="stage"\} 0$')
        await _metric_until(client, r'^micboard_poll_errors_total\{device="stage",reason="timeout"\} [1-9]')
        # The other receiver keeps being served.
        await _metric_until(client, r'^micboard_device_up\{device="lectern"\} 1$')
        ulxd.faults.stall = False
        await _metric_until(client, r'^micboard_device_up\{device="stage"\} 1$')
        await _metric_until(client, r'^micboard_transmitter_present\{device="stage",channel="1"\} 1$')


@pytest.mark.anyio
async def test_a_fleet_of_every_family_is_served_from_its_own_exporter_config(tmp_path: Path) -> None:
    """What ``micboard-exporter demo`` does for the Shure kinds: fleet → generated config → all devices up."""
    specs = parse_fleet({"simulators": [
        {"kind": "shure-ulxd", "id": "ulxd", "model": "ULXD4Q", "seed": 1},
        {"kind": "shure-axtd", "id": "axient", "model": "AD4Q", "seed": 2, "options": {"quadversity": True}},
        {"kind": "shure-qlxd", "id": "qlxd", "seed": 3},
        {"kind": "shure-slxd", "id": "slxd", "model": "SLXD4D", "seed": 4},
        {"kind": "shure-uhfr", "id": "uhfr", "model": "UR4D", "seed": 5},
        {"kind": "shure-p10t", "id": "psm", "seed": 6},
    ]})
    fleet = Fleet(specs)
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: fleet.run(step=0.5, task_status=task_status))
        config = fleet.exporter_config(interval="500ms")
        del config["listen"]
        async with exporter_for(yaml.safe_dump(config), tmp_path) as (_, client):
            for sim_id in ("ulxd", "axient", "qlxd", "slxd", "uhfr", "psm"):
                await _metric_until(client, rf'^micboard_device_up\{{device="{sim_id}"[,}}].* 1$')
            # Quadversity: four antennas per Axient channel once metering runs.
            quad = r'^micboard_rf_signal_strength_dbm\{device="axient",.*channel="4",antenna="d"\} -\d'
            await _metric_until(client, quad)
            await _metric_until(client, r'^micboard_transmitter_info\{device="psm",.*channel="2",model="P10T".*\} 1$')
        tg.cancel_scope.cancel()
