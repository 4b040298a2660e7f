"""The state store: latest snapshot and health per device, events, and the rendered exposition.

Two doors lead in: :meth:`StateStore.record_success` / :meth:`StateStore.record_failure` from the poller,
and :meth:`StateStore.publish` for snapshots a plugin pushes between polls (they update state and
``/metrics`` at once but do not count as a poll for liveness).

Rendering is lazy: a change marks the device dirty, and the next scrape re-renders only the dirty devices'
text chunks, then joins everyone's chunks. So a device that changes on every poll is rendered once per
scrape, not once per poll, and the poll path does no text work at all (this halves the exporter's cost of
a 10,000-device cycle). The freshness sample is kept apart because it moves on every poll.

Mutations happen on the event loop; HTTP threads read through :meth:`StateStore.scrape_bytes` /
:meth:`StateStore.devices`, which take copies under a lock. Scrapes render under a second lock, so two
concurrent scrapes never show a change to one and not to the other.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from micboard_exporter.config_types import BatteryConfig, DeviceConfig
from micboard_exporter.events import DeviceEvent, EventKind, diff_snapshots
from micboard_exporter.exposition import (
    FAMILY_COUNT,
    DeviceView,
    device_label_prefix,
    family_parts,
    render_device,
    render_last_success,
)
from micboard_exporter.model import DeviceSnapshot

log = logging.getLogger(__name__)

RECENT_EVENTS = 200
_EMPTY_CHUNKS: list[bytes] = [b""] * FAMILY_COUNT

EventSink = Callable[[DeviceEvent], None]


@dataclass(slots=True)
class DeviceState:
    """Everything the store knows about one device."""

    view: DeviceView
    prefix: str
    chunks: list[bytes]
    freshness: bytes = b""
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_reason: str | None = None
    last_poll_wall: float | None = None
    ever_polled: bool = False
    events: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A read-only copy of a device's health for the landing page and tests."""

    device_id: str
    plugin: str
    host: str
    up: bool
    last_success: float | None
    consecutive_failures: int
    last_error: str | None
    snapshot: DeviceSnapshot | None


class StateStore:
    """Latest state per device, with events and pre-rendered exposition chunks."""

    def __init__(self, battery: BatteryConfig | None = None, on_event: EventSink | None = None) -> None:
        self._battery = battery or BatteryConfig()
        self._on_event = on_event
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._devices: dict[str, DeviceState] = {}
        self._dirty: set[str] = set()
        self.recent_events: collections.deque[DeviceEvent] = collections.deque(maxlen=RECENT_EVENTS)
        self.ready = False
        """True once the first poll cycle has completed."""

    # ------------------------------------------------------------------ configuration

    def set_devices(self, devices: Sequence[DeviceConfig], battery: BatteryConfig | None = None) -> None:
        """Adopt a (re)loaded device list: keep the state of devices whose config is unchanged or whose
        only change is labels/channels; drop devices that left; add new ones as not yet polled."""
        if battery is not None:
            self._battery = battery
        new: dict[str, DeviceState] = {}
        for cfg in devices:
            old = self._devices.get(cfg.id)
            if old is not None and old.view.config.plugin == cfg.plugin and old.view.config.host == cfg.host:
                old.view.config = cfg
                old.prefix = device_label_prefix(cfg)
                old.freshness = render_last_success(old.prefix, old.view.last_success)
                new[cfg.id] = old
            else:
                view = DeviceView(config=cfg)
                state = DeviceState(view=view, prefix=device_label_prefix(cfg), chunks=_EMPTY_CHUNKS)
                view.errors = state.errors
                view.events = state.events
                new[cfg.id] = state
        with self._lock:
            self._devices = new
            self._dirty = set(new)

    # ------------------------------------------------------------------ the two doors

    def record_success(self, device_id: str, snapshot: DeviceSnapshot, wall_time: float | None = None) -> None:
        """A poll succeeded with ``snapshot``."""
        state = self._devices.get(device_id)
        if state is None:
            return  # the device left the config while its poll was in flight
        now = time.time() if wall_time is None else wall_time
        was_up, ever = state.view.up, state.ever_polled
        state.ever_polled = True
        state.consecutive_failures = 0
        state.last_poll_wall = now
        state.view.last_success = now
        events: list[DeviceEvent] = []
        if not was_up:
            if ever:
                log.info("device %s is back up", device_id)
            events.append(DeviceEvent(device_id, EventKind.DEVICE_UP))
            state.view.up = True
        self._adopt(state, snapshot, events, now, force=not was_up)

    def record_failure(self, device_id: str, reason: str, message: str, wall_time: float | None = None) -> None:
        """A poll failed (after retries) with ``reason`` (timeout, unreachable, protocol, auth, internal)."""
        state = self._devices.get(device_id)
        if state is None:
            return
        now = time.time() if wall_time is None else wall_time
        state.consecutive_failures += 1
        state.last_error = message
        state.last_error_reason = reason
        state.last_poll_wall = now
        state.errors[reason] = state.errors.get(reason, 0) + 1
        events: list[DeviceEvent] = []
        if state.view.up or not state.ever_polled:
            if state.view.up:
                log.info("device %s is down: %s", device_id, message)
                events.append(DeviceEvent(device_id, EventKind.DEVICE_DOWN, detail=message))
            else:
                log.info("device %s is not reachable yet: %s", device_id, message)
            state.view.up = False
        state.ever_polled = True
        self._emit(state, events, now)
        self._render(state)

    def publish(self, device_id: str, snapshot: DeviceSnapshot) -> None:
        """A plugin pushed a fresh snapshot between polls: show it now; liveness is still the poll's job."""
        state = self._devices.get(device_id)
        if state is None:
            return
        self._adopt(state, snapshot, [], time.time(), force=False)

    # ------------------------------------------------------------------ internals

    def _adopt(
        self, state: DeviceState, snapshot: DeviceSnapshot, events: list[DeviceEvent], now: float, *, force: bool
    ) -> None:
        previous = state.view.snapshot
        unchanged = previous is not None and previous == snapshot
        if not unchanged:
            events.extend(diff_snapshots(previous, snapshot, self._battery))
            state.view.snapshot = snapshot
        self._emit(state, events, now)
        state.freshness = render_last_success(state.prefix, state.view.last_success)
        if unchanged and not force and not events:
            return  # only freshness moved
        self._render(state)

    def _render(self, state: DeviceState) -> None:
        with self._lock:
            self._dirty.add(state.view.config.id)

    def _emit(self, state: DeviceState, events: list[DeviceEvent], now: float) -> None:
        for event in events:
            stamped = DeviceEvent(
                event.device_id, event.kind, event.channel, event.channel_name, event.detail, event.count, now
            )
            state.events[event.kind.value] = state.events.get(event.kind.value, 0) + event.count
            self.recent_events.append(stamped)
            if self._on_event is not None:
                self._on_event(stamped)

    # ------------------------------------------------------------------ readers (any thread)

    def scrape_bytes(self) -> bytes:
        """The device part of ``/metrics``, UTF-8 encoded, as one buffer."""
        return b"".join(self.scrape_parts())

    def scrape_parts(self) -> list[bytes]:
        """The device part of ``/metrics`` as UTF-8 parts in order: render what changed, list everything."""
        with self._render_lock:
            with self._lock:
                # Take the dirty set before reading any state: a change made while we render marks the
                # device dirty again, so the next scrape picks it up.
                dirty, self._dirty = self._dirty, set()
                stale = [self._devices[d] for d in dirty if d in self._devices]
            for state in stale:
                state.chunks = render_device(state.view, state.prefix)
            with self._lock:
                states = list(self._devices.values())
        return family_parts([s.chunks for s in states], [s.freshness for s in states])

    def scrape(self) -> str:
        """The device part of ``/metrics`` as text."""
        return self.scrape_bytes().decode("utf-8")

    def devices(self) -> list[DeviceStatus]:
        """Health of every configured device, in config order."""
        with self._lock:
            states = list(self._devices.values())
        return [
            DeviceStatus(
                device_id=s.view.config.id,
                plugin=s.view.config.plugin,
                host=s.view.config.address,
                up=s.view.up,
                last_success=s.view.last_success,
                consecutive_failures=s.consecutive_failures,
                last_error=s.last_error,
                snapshot=s.view.snapshot,
            )
            for s in states
        ]

    def status(self, device_id: str) -> DeviceStatus | None:
        """Health of one device."""
        return next((d for d in self.devices() if d.device_id == device_id), None)
