"""Run a whole :class:`Exporter` in-process on a free loopback port for endpoint tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
from core_helpers import make_registry

from micboard_exporter.app import Exporter


@asynccontextmanager
async def running_exporter(config_text: str, tmp_path: Path, *, environ: dict[str, str] | None = None,
                           wait_ready: bool = True) -> AsyncIterator[tuple[Exporter, httpx.AsyncClient]]:
    """Write ``config_text``, start the exporter on 127.0.0.1:0 and yield it with a client for its URL."""
    path = tmp_path / "config.yaml"
    path.write_text(config_text, encoding="utf-8")
    exporter = Exporter(path, make_registry(), listen="127.0.0.1:0", environ=environ or {})
    async with anyio.create_task_group() as tg:
        await exporter.apply(exporter.load())
        await tg.start(lambda task_status: exporter.run(handle_signals=False, task_status=task_status))
        assert exporter.http is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{exporter.http.port}", timeout=10) as client:
            if wait_ready:
                with anyio.fail_after(10):
                    while not exporter.store.ready:
                        await anyio.sleep(0.01)
            yield exporter, client
        tg.cancel_scope.cancel()
