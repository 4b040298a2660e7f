"""Shared test helpers for the Sennheiser suites: run simulators, build device configs, check for leaks."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import anyio

from micboard_exporter.config_types import DeviceConfig, Secret
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.simulators.base import SimulatedDevice, serving

#: The suites' name for serving simulators during a block.
running = serving

PASSWORD = "Micboard-Sim1!"
#: Where the respx-mocked SSCv2 device answers (see :func:`mocked_sscv2_device`).
MOCKED_BASE = "https://ewdx.test:443"


def device(
    sim: SimulatedDevice,
    *,
    device_id: str = "dev1",
    password: str | None = PASSWORD,
    options: Mapping[str, Any] | None = None,
) -> DeviceConfig:
    """A config entry pointing at ``sim``; the password arrives as a resolved secret like the core makes."""
    secrets = {"password": Secret(password, "env:TEST_PASSWORD")} if password is not None else {}
    return DeviceConfig(
        id=device_id,
        plugin=sim.plugin,
        host=sim.host,
        port=sim.port,
        options=MappingProxyType(dict(options or {})),
        secrets=MappingProxyType(secrets),
    )


class Recorder:
    """A ``publish`` callable that keeps what it is given and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.snapshots: list[DeviceSnapshot] = []
        self._event = anyio.Event()

    def __call__(self, device_id: str, snapshot: DeviceSnapshot) -> None:
        assert device_id == snapshot.device_id
        self.snapshots.append(snapshot)
        self._event.set()
        self._event = anyio.Event()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> DeviceSnapshot:
        """The first published snapshot (already seen or future) for which ``predicate`` is true."""
        with anyio.fail_after(timeout):
            seen = 0
            while True:
                for snap in self.snapshots[seen:]:
                    if predicate(snap):
                        return snap
                seen = len(self.snapshots)
                await self._event.wait()


async def eventually(predicate: Any, timeout: float = 5.0, step: float = 0.01) -> None:
    """Wait (bounded) until ``predicate()`` is true."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(step)


def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks alive besides the current one (a plugin that leaks its background tasks shows up here)."""
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not t.done()}


def open_fds() -> int:
    """Number of open file descriptors of this process (sockets included)."""
    return len(os.listdir("/proc/self/fd"))


def mocked_sscv2_device(**options: Any) -> DeviceConfig:
    """An SSCv2 device at :data:`MOCKED_BASE` (answered by respx), polling only, with short deadlines."""
    return DeviceConfig(
        id="foh", plugin="sennheiser-sscv2", host="ewdx.test", port=443,
        options={"verify_tls": False, "subscribe": False, "timeout": 0.5, **options},
        secrets={"password": Secret(PASSWORD, "env:FOH_PW")},
    )
