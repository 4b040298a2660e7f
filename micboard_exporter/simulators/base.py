"""What every protocol simulator offers to tests, ``simulate``/``demo`` and benchmarks.

A simulator is one simulated device (a receiver, a base station …) listening on a loopback address.
Lifecycle::

    sim = ShureUlxdSimulator(host="127.0.0.1", port=0, model="ULXD4Q", seed=1)
    async with serving(sim):               # returns once bound; sim.port is the real port
        ...                                # talk to it, script sim.channels[0].transmitter_on = False
        sim.changed()                      # tell it state changed so it pushes updates the way the device would

Fault modes are set through :attr:`faults` (see :class:`Faults`) and take effect on the next request
or connection.
"""

from __future__ import annotations

import abc
import contextlib
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

import anyio
from anyio.abc import TaskStatus

from micboard_exporter.simulators.physics import ChannelPhysics, default_channels

#: How many requests a simulator remembers for tests to inspect (the most recent ones). A simulator serving a
#: demo for days must not keep every request it ever saw.
RECORD_LIMIT: Final = 10_000


@dataclass
class Faults:
    """Misbehaviours a simulated device can show. All off by default."""

    stall: bool = False
    """Accept connections / requests and never answer."""
    close_mid_frame: bool = False
    """Send half a reply, then close the connection."""
    garbage: bool = False
    """Answer with binary garbage instead of a frame."""
    split_bytes: bool = False
    """Send every reply one byte per write."""
    refuse: bool = False
    """Refuse (or immediately close) new connections; UDP simulators stop answering."""
    drip_interval: float = 0.0
    """When > 0, send replies one byte every ``drip_interval`` seconds."""


class SimulatedDevice(abc.ABC):
    """Base class of protocol simulators."""

    kind: ClassVar[str]
    """Name used in simulator fleet files, e.g. ``"shure-ulxd"``."""
    plugin: ClassVar[str]
    """The exporter plugin that talks to this device, e.g. ``"shure"``."""
    default_model: ClassVar[str]
    channel_count_by_model: ClassVar[Mapping[str, int]] = {}

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str | None = None,
        seed: int = 0,
        channels: list[ChannelPhysics] | None = None,
        options: Mapping[str, Any] | None = None,
        record_limit: int = RECORD_LIMIT,
    ) -> None:
        self.host = host
        self.port = port
        self.model = model or self.default_model
        self.seed = seed
        self.rng = random.Random(seed)
        count = self.channel_count_by_model.get(self.model, 1)
        self.channels = channels if channels is not None else default_channels(count, seed=seed)
        self.options: Mapping[str, Any] = options or {}
        self.faults = Faults()
        self.record_limit = record_limit
        """How many of the latest requests the simulator keeps for tests to inspect."""

    @abc.abstractmethod
    async def serve(self, *, task_status: TaskStatus[None]) -> None:
        """Bind (updating :attr:`port` when it was 0), call ``task_status.started()``, serve until cancelled."""

    def changed(self) -> None:  # noqa: B027 - simulators that push override this
        """State in :attr:`channels` changed: push it the way the real device would (unsolicited REP, SSE …)."""

    def step(self, dt: float, *, lively: bool = True) -> None:
        """Advance the physics ``dt`` seconds and push what changed."""
        for ch in self.channels:
            ch.step(dt, self.rng, lively=lively)
        self.changed()

    def exporter_device(self, device_id: str) -> dict[str, Any]:
        """A ``devices:`` entry for the exporter config that points at this simulator."""
        return {"id": device_id, "plugin": self.plugin, "host": self.host, "port": self.port}


class Servable(Protocol):
    """Anything served like a simulator: binds, reports ``started``, serves until cancelled."""

    async def serve(self, *, task_status: TaskStatus[None]) -> None: ...


@contextlib.asynccontextmanager
async def serving(*servers: Servable) -> AsyncIterator[None]:
    """Serve ``servers`` for the duration of the block; each is bound before the body runs."""
    async with anyio.create_task_group() as tg:
        for server in servers:
            await tg.start(server.serve)
        yield
        tg.cancel_scope.cancel()
