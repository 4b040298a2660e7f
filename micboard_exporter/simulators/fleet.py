"""Run a fleet of simulated devices: ``micboard-exporter simulate`` and the ``demo``.

A fleet file lists simulators::

    simulators:
      - {kind: shure-ulxd, id: stage-left, host: 127.0.0.11, model: ULXD4Q, seed: 1}
      - {kind: sennheiser-ewdx, id: foh-ewdx, host: 127.0.0.12}

``kind`` names a :class:`~micboard_exporter.simulators.base.SimulatedDevice` subclass found in this package;
``port`` defaults to 0 (any free port). :func:`exporter_config` writes an exporter config that points at
the running fleet.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus

from micboard_exporter.simulators.base import SimulatedDevice

log = logging.getLogger(__name__)


def simulator_kinds() -> dict[str, type[SimulatedDevice]]:
    """Every simulator class in :mod:`micboard_exporter.simulators`, by ``kind``."""
    import micboard_exporter.simulators as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in {"base", "fleet", "physics"}:
            importlib.import_module(f"{package.__name__}.{module.name}")
    kinds: dict[str, type[SimulatedDevice]] = {}
    pending: list[type[SimulatedDevice]] = list(SimulatedDevice.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        kind = getattr(cls, "kind", None)
        if isinstance(kind, str) and not getattr(cls, "__abstractmethods__", None):
            kinds[kind] = cls
    return dict(sorted(kinds.items()))


@dataclass(frozen=True, slots=True)
class SimulatorSpec:
    """One entry of a fleet file."""

    kind: str
    id: str
    host: str = "127.0.0.1"
    port: int = 0
    model: str | None = None
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


def parse_fleet(doc: Any, source: str = "fleet") -> list[SimulatorSpec]:
    """Validate a fleet document; raise ``ValueError`` naming the entry and the problem."""
    kinds = simulator_kinds()
    if not isinstance(doc, dict) or not isinstance(doc.get("simulators"), list):
        raise ValueError(f"{source}: expected a mapping with a 'simulators' list")
    specs: list[SimulatorSpec] = []
    seen: set[str] = set()
    allowed = {"kind", "id", "host", "port", "model", "seed", "options"}
    for i, item in enumerate(doc["simulators"]):
        where = f"{source}: simulators[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping")
        unknown = set(item) - allowed
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
            )
        kind = item.get("kind")
        if kind not in kinds:
            raise ValueError(f"{where}.kind: unknown simulator kind {kind!r}; available: {', '.join(kinds)}")
        sim_id = str(item.get("id") or f"{kind}-{i + 1}")
        if sim_id in seen:
            raise ValueError(f"{where}.id: duplicate id {sim_id!r}")
        seen.add(sim_id)
        specs.append(SimulatorSpec(
            kind=kind, id=sim_id, host=str(item.get("host", "127.0.0.1")), port=int(item.get("port", 0)),
            model=item.get("model"), seed=int(item.get("seed", i)), options=dict(item.get("options") or {}),
        ))
    return specs


class Fleet:
    """Running simulators, started together and stepped on a timer."""

    def __init__(self, specs: Sequence[SimulatorSpec]) -> None:
        kinds = simulator_kinds()
        self.specs = list(specs)
        self.devices: dict[str, SimulatedDevice] = {
            spec.id: kinds[spec.kind](host=spec.host, port=spec.port, model=spec.model, seed=spec.seed,
                                      options=spec.options)
            for spec in specs
        }

    async def run(self, *, step: float = 1.0, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start every simulator, report started, then advance their physics every ``step`` seconds."""
        async with anyio.create_task_group() as tg:
            for device in self.devices.values():
                await tg.start(device.serve)
            task_status.started()
            if step > 0:
                while True:
                    await anyio.sleep(step)
                    for device in self.devices.values():
                        device.step(step)

    def exporter_config(self, *, listen: str = ":9798", interval: str = "2s") -> dict[str, Any]:
        """An exporter config document that polls this fleet."""
        devices = []
        slot = 1
        for sim_id, device in self.devices.items():
            entry = device.exporter_device(sim_id)
            channels = {}
            for number in range(1, len(device.channels) + 1):
                channels[number] = {"slot": slot}
                slot += 1
            entry.setdefault("channels", channels)
            entry.setdefault("labels", {"room": "demo"})
            devices.append(entry)
        return {"listen": listen, "poll": {"interval": interval, "timeout": "1500ms"}, "devices": devices}
