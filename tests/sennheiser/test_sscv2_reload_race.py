"""A reload that forgets an SSCv2 device while its poll is still running: the poll opens nothing new (no
client, no event stream, no subscription session left on the device), and it does not report a device
that was answering as failed."""

from __future__ import annotations

import gc

import anyio
import pytest
from sennheiser_helpers import device, eventually, open_fds, other_tasks, running

from micboard_exporter.errors import PollError
from micboard_exporter.model import DeviceSnapshot
from micboard_exporter.plugins.sennheiser.sscv2 import SSCv2Plugin
from micboard_exporter.plugins.sennheiser.sscv2.session import SessionClosed
from micboard_exporter.simulators.sennheiser_sscv2 import SennheiserEwdxSimulator

pytestmark = pytest.mark.anyio

OPTIONS = {"verify_tls": False, "timeout": 1.0}


async def forget_while_polling(plugin: SSCv2Plugin, sim: SennheiserEwdxSimulator) -> DeviceSnapshot | PollError:
    """Stall the device, start a poll, forget the device while the poll waits, and return the poll's outcome."""
    outcome: list[DeviceSnapshot | PollError] = []

    async def poll() -> None:
        try:
            outcome.append(await plugin.poll(device(sim, options=OPTIONS)))
        except PollError as exc:
            outcome.append(exc)

    sim.faults.stall = True
    async with anyio.create_task_group() as tg:
        tg.start_soon(poll)
        await anyio.sleep(0.2)  # the poll is waiting for the stalled device
        await plugin.forget("dev1")
    sim.faults.stall = False
    return outcome[0]


async def test_a_poll_interrupted_by_a_reload_reports_the_last_state_and_reopens_nothing() -> None:
    sim = SennheiserEwdxSimulator(seed=21)
    fds = open_fds()
    tasks = other_tasks()
    async with running(sim):
        plugin = SSCv2Plugin()
        first = await plugin.poll(device(sim, options=OPTIONS))
        await eventually(lambda: len(sim.active_sessions) == 1)
        streams, sessions = sim.streams_opened, set(sim.active_sessions)

        outcome = await forget_while_polling(plugin, sim)

        assert isinstance(outcome, DeviceSnapshot), outcome  # not a failure of a device that was answering
        assert (outcome.serial, len(outcome.channels)) == (first.serial, len(first.channels))
        await anyio.sleep(0.5)  # time for anything wrongly restarted to show up
        assert sim.streams_opened == streams, "the interrupted poll opened a new event stream"
        # The stalled device could not take the DELETE of the old session; no new one was made.
        assert set(sim.active_sessions) <= sessions
        await plugin.aclose()
    gc.collect()  # a client opened after the close would warn here
    assert open_fds() == fds
    assert other_tasks() <= tasks


async def test_a_first_poll_interrupted_by_a_reload_fails_without_retry() -> None:
    """With nothing read yet there is no state to report: the poll fails, and not as a transient error
    (a retry would open a session for a device the exporter no longer polls)."""
    sim = SennheiserEwdxSimulator(seed=22)
    async with running(sim):
        plugin = SSCv2Plugin()
        outcome = await forget_while_polling(plugin, sim)
        assert isinstance(outcome, SessionClosed), outcome
        assert not outcome.transient
        assert "session closed by a reload" in str(outcome)
        await anyio.sleep(0.3)
        assert sim.streams_opened == 0
        assert sim.active_sessions == []
        await plugin.aclose()
