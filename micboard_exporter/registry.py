"""Plugin discovery through the ``micboard_exporter.plugins`` entry-point group.

A plugin that fails to import does not stop the others: it becomes an entry with an error, shown by
``micboard-exporter plugins`` and quoted in the config error of any device that names it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from micboard_exporter.errors import PluginLoadError
from micboard_exporter.plugin import Plugin

ENTRY_POINT_GROUP = "micboard_exporter.plugins"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PluginEntry:
    """One registered plugin, loaded or not."""

    name: str
    target: str
    """``module:Class`` the entry point names."""
    distribution: str | None
    version: str | None
    plugin_class: type[Plugin] | None
    error: str | None

    @property
    def loaded(self) -> bool:
        """True when the class imported and is a :class:`Plugin`."""
        return self.plugin_class is not None


def _load(ep: EntryPoint) -> PluginEntry:
    dist = getattr(ep, "dist", None)
    dist_name = dist.metadata["Name"] if dist is not None else None
    dist_version = dist.version if dist is not None else None
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of third-party code is reported, not fatal
        log.warning("plugin %s (%s) failed to load: %s: %s", ep.name, ep.value, type(exc).__name__, exc)
        return PluginEntry(ep.name, ep.value, dist_name, dist_version, None, f"{type(exc).__name__}: {exc}")
    if not (isinstance(obj, type) and issubclass(obj, Plugin)):
        error = f"{ep.value} is not a micboard_exporter.plugin.Plugin subclass"
        log.warning("plugin %s: %s", ep.name, error)
        return PluginEntry(ep.name, ep.value, dist_name, dist_version, None, error)
    if getattr(obj, "name", None) != ep.name:
        error = f"{ep.value} declares name {getattr(obj, 'name', None)!r} but is registered as {ep.name!r}"
        log.warning("plugin %s: %s", ep.name, error)
        return PluginEntry(ep.name, ep.value, dist_name, dist_version, None, error)
    return PluginEntry(ep.name, ep.value, dist_name, dist_version, obj, None)


class PluginRegistry:
    """Name → plugin class map built from entry points (or from classes, in tests)."""

    def __init__(self, entries: Iterable[PluginEntry]) -> None:
        self._entries: dict[str, PluginEntry] = {}
        for entry in entries:
            # First registration wins, as importlib orders distributions by sys.path.
            self._entries.setdefault(entry.name, entry)

    @classmethod
    def discover(cls, group: str = ENTRY_POINT_GROUP) -> PluginRegistry:
        """Load every plugin registered in the entry-point ``group``."""
        return cls(_load(ep) for ep in sorted(entry_points(group=group), key=lambda e: e.name))

    @classmethod
    def from_classes(cls, *classes: type[Plugin]) -> PluginRegistry:
        """A registry of the given classes (for tests and embedding)."""
        return cls(
            PluginEntry(c.name, f"{c.__module__}:{c.__qualname__}", None, None, c, None) for c in classes
        )

    @property
    def entries(self) -> Mapping[str, PluginEntry]:
        """Every entry by name, loaded or failed, sorted by name."""
        return dict(sorted(self._entries.items()))

    def available(self) -> list[str]:
        """Names of the plugins that loaded."""
        return sorted(name for name, e in self._entries.items() if e.loaded)

    def get(self, name: str) -> type[Plugin]:
        """The plugin class called ``name``; :class:`PluginLoadError` says why not."""
        entry = self._entries.get(name)
        if entry is None:
            available = ", ".join(self.available()) or "none"
            raise PluginLoadError(f"unknown plugin {name!r}; available plugins: {available}")
        if entry.plugin_class is None:
            raise PluginLoadError(f"plugin {name!r} is installed but failed to load: {entry.error}")
        return entry.plugin_class
