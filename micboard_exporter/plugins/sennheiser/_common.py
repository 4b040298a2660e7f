"""Small pieces shared by the three Sennheiser plugins: background tasks and event counting.

Nothing here knows a protocol; codecs stay independent of each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_log = logging.getLogger(__name__)


class BackgroundTask:
    """One long-running coroutine (an SSE stream, a UDP receive loop) owned by a session.

    The plugin contract gives a plugin no task group of its own: ``poll`` runs inside the poller's
    (short-lived) cancel scopes, yet a subscription must outlive a poll. The exporter runs on asyncio
    (see ``tests/conftest.py``), so a plain asyncio task is the honest tool; anyio cancel scopes inside
    it behave as usual. The owner must call :meth:`stop` (from ``forget``/``aclose``), which cancels
    and awaits the task so nothing leaks.
    """

    def __init__(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self._fn = fn
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the task was started and has not finished."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the coroutine unless it is already running."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._guarded(), name=self.name)

    async def _guarded(self) -> None:
        try:
            await self._fn()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a crashed background loop must be logged, never silent
            _log.exception("background task %s crashed", self.name)

    async def stop(self) -> None:
        """Cancel the task and wait until it has finished its cleanup."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class EventCounter:
    """Counts RF dropouts and audio clips of one channel from successive observations.

    Pushed updates and polls both feed it, so a dropout that heals before the next scrape is still
    counted (DESIGN.md: "counts events it saw").
    """

    dropouts: int = 0
    clips: int = 0
    _linked: bool | None = None
    _clipping: bool = False

    def observe(self, *, linked: bool | None = None, clipping: bool | None = None) -> None:
        """Record the current link and clip state; ``None`` means "not known in this observation"."""
        if linked is not None:
            if self._linked is True and not linked:
                self.dropouts += 1
            self._linked = linked
        if clipping is not None:
            if clipping and not self._clipping:
                self.clips += 1
            self._clipping = clipping
