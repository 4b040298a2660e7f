"""Helpers for the Shure suites: run simulators, build device configs, record and await publishes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Any

import anyio

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugins.shure import ShurePlugin
from micboard_exporter.simulators.base import serving
from micboard_exporter.simulators.shure import ShureSimulator

#: The suites' name for serving simulators during a block.
running = serving

#: Short deadlines keep fault tests fast; loopback answers in well under a millisecond.
FAST = {"reply_timeout": "300ms", "reconnect_max": "500ms"}


def device(sim: ShureSimulator, *, device_id: str = "rx1", **options: Any) -> DeviceConfig:
    """A config entry for ``sim`` with the family and model it advertises, plus ``options``."""
    merged: dict[str, Any] = dict(sim.exporter_device(device_id)["options"])
    merged.update(options)
    return DeviceConfig(
        id=device_id, plugin="shure", host=sim.host, port=sim.port, options=MappingProxyType(merged)
    )


class Recorder:
    """A ``publish`` callable that keeps what it is given, with the monotonic time it arrived."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[float, DeviceSnapshot]] = []
        self._event = anyio.Event()

    def __call__(self, device_id: str, snapshot: DeviceSnapshot) -> None:
        assert device_id == snapshot.device_id
        self.snapshots.append((anyio.current_time(), snapshot))
        self._event.set()
        self._event = anyio.Event()

    @property
    def last(self) -> DeviceSnapshot:
        """The most recent published snapshot."""
        return self.snapshots[-1][1]

    async def wait_for(self, predicate: Callable[[DeviceSnapshot], bool], timeout: float = 3.0) -> DeviceSnapshot:
        """The first published snapshot (from now on, or already the last one) that satisfies ``predicate``."""
        with anyio.fail_after(timeout):
            while True:
                if self.snapshots and predicate(self.last):
                    return self.last
                await self._event.wait()


@contextlib.asynccontextmanager
async def plugin_session(recorder: Recorder | None = None) -> AsyncIterator[ShurePlugin]:
    """A plugin that is always closed, then checked for leftover background tasks."""
    plugin = ShurePlugin(publish=recorder or Recorder())
    try:
        yield plugin
    finally:
        await plugin.aclose()
        assert_no_session_tasks()


def assert_no_session_tasks() -> None:
    """No Shure session task survives ``aclose`` (a leaked task would keep a socket open)."""
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("shure-session") and not t.done()]
    assert not leftovers, leftovers


def options(**extra: Any) -> Mapping[str, Any]:
    """FAST deadlines plus ``extra``."""
    return {**FAST, **extra}
