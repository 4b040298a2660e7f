"""The running exporter: config, plugins, poller, state store and HTTP server wired together.

:class:`Exporter` owns one plugin instance per plugin name (each given the store's ``publish``), the
poller, and the HTTP server thread. Reloads (SIGHUP or ``POST /-/reload``) validate the new file first and
swap only when it is good; a rejected file keeps the running config and sets
``micboard_config_last_reload_successful 0``. On SIGTERM/SIGINT scheduling stops and every plugin is closed
within a bounded time.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.from_thread
from anyio.abc import TaskStatus

from micboard_exporter import __version__
from micboard_exporter.config import load_config
from micboard_exporter.config_types import Config, DeviceConfig
from micboard_exporter.errors import ConfigErrors
from micboard_exporter.events import DeviceEvent
from micboard_exporter.plugin import Plugin
from micboard_exporter.poller import Poller, select_shard
from micboard_exporter.registry import PluginRegistry
from micboard_exporter.selfmetrics import SelfMetrics
from micboard_exporter.server import HttpServer
from micboard_exporter.state import StateStore
from micboard_exporter.webconfig import WebConfigWatcher

log = logging.getLogger(__name__)
event_log = logging.getLogger("micboard_exporter.events")

#: How long shutdown waits for plugins to close their sessions (METER_RATE 0, DELETE subscriptions ...).
CLOSE_TIMEOUT_S = 5.0


def log_event(event: DeviceEvent) -> None:
    """Write one event as one log line with structured fields."""
    fields = {"event": event.kind.value, "device": event.device_id}
    if event.channel is not None:
        fields["channel"] = str(event.channel)
    if event.channel_name:
        fields["channel_name"] = event.channel_name
    if event.detail:
        fields["detail"] = event.detail
    if event.count > 1:
        fields["count"] = str(event.count)
    where = f" channel {event.channel}" if event.channel is not None else ""
    event_log.info("%s on %s%s", event.kind.value, event.device_id, where, extra=fields)


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload did."""

    ok: bool
    message: str


class Exporter:
    """One exporter process's worth of state."""

    def __init__(
        self,
        config_path: str | Path,
        registry: PluginRegistry,
        *,
        listen: str | None = None,
        shard_index: int = 0,
        shard_count: int = 1,
        environ: Mapping[str, str] | None = None,
        metrics: SelfMetrics | None = None,
        web_config_file: str | Path | None = None,
    ) -> None:
        self.config_path = str(config_path)
        self.registry = registry
        self.listen_override = listen
        self.web_config_file = web_config_file
        self.shard_index = shard_index
        self.shard_count = shard_count
        self._environ = environ
        self.metrics = metrics or SelfMetrics()
        self.store = StateStore(on_event=log_event)
        self.poller = Poller(self.store, self.metrics)
        self.plugins: dict[str, Plugin] = {}
        self.config: Config | None = None
        self.started_at = time.time()
        self.reloads = 0
        self._reload_lock = anyio.Lock()
        self.portal: anyio.from_thread.BlockingPortal | None = None
        self.http: HttpServer | None = None
        """The HTTP server while :meth:`run` is serving (its ``port`` is the bound one)."""

    # ------------------------------------------------------------------------------ config

    def load(self) -> Config:
        """Load and validate the config file (raises :class:`ConfigErrors`)."""
        return load_config(self.config_path, self.registry, environ=self._environ)

    @property
    def listen(self) -> str:
        """The address to serve on: the flag wins over the config file."""
        if self.listen_override:
            return self.listen_override
        return self.config.listen if self.config else ":9798"

    def my_devices(self, config: Config) -> list[DeviceConfig]:
        """The devices of this shard."""
        return select_shard(config.devices, self.shard_index, self.shard_count)

    async def apply(self, config: Config) -> None:
        """Swap in a validated config: start new plugins, forget changed devices, close unused plugins."""
        old = {d.id: d for d in self.config.devices} if self.config else {}
        devices = self.my_devices(config)
        needed = {d.plugin for d in devices}
        for name in sorted(needed - self.plugins.keys()):
            # The config was validated against this registry, so every plugin it names has loaded.
            self.plugins[name] = self.registry.get(name)(publish=self.store.publish)
        new_ids = {d.id: d for d in devices}
        for dev_id, dev in old.items():
            if dev_id not in new_ids or new_ids[dev_id].for_plugin() != dev.for_plugin():
                plugin = self.plugins.get(dev.plugin)
                if plugin is not None:
                    with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                        await plugin.forget(dev_id)
        self.store.set_devices(devices, config.battery)
        self.poller.configure(config.poll, devices, {n: p for n, p in self.plugins.items() if n in needed})
        for name in sorted(self.plugins.keys() - needed):
            plugin = self.plugins.pop(name)
            with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                await plugin.aclose()
        self.config = config
        self.metrics.devices_configured.set(len(devices))
        self.metrics.reload_successful.set(1)
        self.metrics.reload_timestamp.set(time.time())

    async def reload(self) -> ReloadOutcome:
        """Validate the config file again and swap it in if good (SIGHUP, ``POST /-/reload``)."""
        async with self._reload_lock:
            http = self.http
            if http is not None:
                # A reload also picks up a changed --web.config.file (rotated certificates) at once.
                await anyio.to_thread.run_sync(lambda: http.web.maybe_reload(force=True))
            try:
                config = await anyio.to_thread.run_sync(self.load)
            except ConfigErrors as exc:
                self.metrics.reload_successful.set(0)
                log.error("config reload rejected, keeping the running config:\n%s", exc)
                return ReloadOutcome(False, f"config reload rejected, keeping the running config:\n{exc}")
            except Exception as exc:  # a loader bug must not take a running exporter down (logged below)
                self.metrics.reload_successful.set(0)
                log.exception("config reload failed unexpectedly, keeping the running config")
                return ReloadOutcome(False, f"config reload failed, keeping the running config: {exc!r}")
            if self.config is not None and config.checksum == self.config.checksum:
                self.metrics.reload_successful.set(1)
                self.metrics.reload_timestamp.set(time.time())
                return ReloadOutcome(True, "config unchanged")
            await self.apply(config)
            self.reloads += 1
            log.info("config reloaded: %d devices", len(self.my_devices(config)))
            return ReloadOutcome(True, f"config reloaded: {len(self.my_devices(config))} devices")

    # ------------------------------------------------------------------------------ lifecycle

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    log.info("SIGHUP received: reloading %s", self.config_path)
                    await self.reload()
                else:
                    log.info("%s received: shutting down", signal.Signals(signum).name)
                    scope.cancel()
                    return

    async def run(
        self, *, handle_signals: bool = True, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled or told to stop by a signal; then close every plugin."""
        if self.config is None:
            await self.apply(self.load())
        # Bind before anything starts, so a taken port is a plain OSError for the caller to report.
        server = self.http = HttpServer(self, self.listen, WebConfigWatcher(self.web_config_file))
        try:
            async with anyio.from_thread.BlockingPortal() as portal:
                self.portal = portal
                server.start()
                log.info(
                    "micboard-exporter %s serving on %s with %d devices (shard %d of %d)",
                    __version__, server.url, len(self.my_devices(self.config)) if self.config else 0,
                    self.shard_index, self.shard_count,
                )
                async with anyio.create_task_group() as tg:
                    if handle_signals:
                        tg.start_soon(self._signals, tg.cancel_scope)
                    tg.start_soon(self.poller.run)
                    task_status.started()
                await portal.stop(cancel_remaining=True)
        finally:
            await anyio.to_thread.run_sync(server.stop)
            self.http = None
            await self.close_plugins()
            self.portal = None

    async def close_plugins(self) -> None:
        """Close every plugin, each within :data:`CLOSE_TIMEOUT_S`."""
        with anyio.CancelScope(shield=True):
            for name, plugin in list(self.plugins.items()):
                with anyio.move_on_after(CLOSE_TIMEOUT_S) as scope:
                    try:
                        await plugin.aclose()
                    except Exception:
                        log.exception("plugin %s failed to close cleanly", name)
                if scope.cancelled_caught:
                    log.warning("plugin %s did not close within %.0fs", name, CLOSE_TIMEOUT_S)
            self.plugins.clear()
