"""The simulator fleet runner in-process: simulators start, step, and the exporter config it writes works."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import yaml

from micboard_exporter.app import Exporter
from micboard_exporter.registry import PluginRegistry
from micboard_exporter.simulators.fleet import Fleet, parse_fleet

pytestmark = pytest.mark.anyio


async def test_fleet_serves_and_the_exporter_polls_it(tmp_path: Path) -> None:
    specs = parse_fleet({"simulators": [
        {"kind": "shure-ulxd", "id": "rx-a", "model": "ULXD4D", "seed": 3},
        {"kind": "shure-slxd", "id": "rx-b", "model": "SLXD4"},
    ]})
    fleet = Fleet(specs)
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: fleet.run(step=0.05, task_status=task_status))
        assert all(d.port > 0 for d in fleet.devices.values())
        doc = fleet.exporter_config(listen="127.0.0.1:0", interval="200ms")
        assert [(d["id"], d["plugin"]) for d in doc["devices"]] == [("rx-a", "shure"), ("rx-b", "shure")]
        # Slots run on across the fleet: two channels, then one.
        assert [d["channels"] for d in doc["devices"]] == [{1: {"slot": 1}, 2: {"slot": 2}}, {1: {"slot": 3}}]
        path = tmp_path / "exporter.yaml"
        path.write_text(yaml.safe_dump(doc))
        exporter = Exporter(path, PluginRegistry.discover())
        await exporter.apply(exporter.load())
        await tg.start(lambda task_status: exporter.run(handle_signals=False, task_status=task_status))
        with anyio.fail_after(10):
            while not all(s.up for s in exporter.store.devices()):
                await anyio.sleep(0.05)
        battery_before = fleet.devices["rx-a"].channels[0].battery_ratio
        await anyio.sleep(0.3)
        assert fleet.devices["rx-a"].channels[0].battery_ratio < battery_before  # the world moves on
        tg.cancel_scope.cancel()
