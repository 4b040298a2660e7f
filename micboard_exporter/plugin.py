"""The plugin contract: how a manufacturer's protocol plugs into the exporter.

A plugin is a class registered in the ``micboard_exporter.plugins`` entry-point group. The exporter makes
one instance per process (and a fresh one for each ``/probe`` request) and calls :meth:`Plugin.poll` for
each of the plugin's devices every poll interval. A plugin may keep sessions between polls; when a session
receives a pushed change it calls the ``publish`` callable it was given, so the change reaches
``/metrics`` at once. Plugins know protocols and nothing about Prometheus.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.model import DeviceSnapshot

#: ``publish(device_id, snapshot)``: hand a pushed snapshot to the state store between polls.
Publish = Callable[[str, DeviceSnapshot], None]


def discard(_device_id: str, _snapshot: DeviceSnapshot) -> None:
    """A ``publish`` that drops everything (used by one-shot probes)."""


class Plugin(abc.ABC):
    """Base class of every protocol plugin.

    Subclasses set :attr:`name`, :attr:`options_schema` (JSON Schema of the per-device ``options``,
    merged into the config schema) and :attr:`default_port`, and implement :meth:`poll`.

    ``options`` are the plugin-wide defaults from the config's ``defaults.<plugin>`` section; per-device
    ``options`` override them key by key (already merged into :attr:`DeviceConfig.options`).
    """

    name: ClassVar[str]
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "additionalProperties": False}
    default_port: ClassVar[int | None] = None
    manufacturer: ClassVar[str | None] = None

    def __init__(self, publish: Publish = discard) -> None:
        self.publish = publish

    @abc.abstractmethod
    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Return a fresh snapshot of ``device`` or raise a :class:`~micboard_exporter.errors.PollError`."""

    async def forget(self, device_id: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Drop any session kept for ``device_id`` (it left the config or its settings changed)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Close every session, stop metering and cancel subscriptions. Called once at shutdown."""
