"""The SSCv2 transport closes the socket of a TLS handshake that is cancelled or fails: no file descriptor
is left for the garbage collector (httpcore alone leaves one when a deadline or a failing sibling request
cancels the handshake)."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import PollError
from micboard_exporter.plugins.sennheiser.sscv2.session import SSCv2Session

pytestmark = pytest.mark.anyio


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@asynccontextmanager
async def server(answer: Callable[[anyio.abc.SocketStream], Awaitable[None]]) -> AsyncIterator[int]:
    """A TCP listener on loopback whose connections get ``answer``; yields its port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = int(listener.extra(anyio.abc.SocketAttribute.local_port))  # noqa: S610 - anyio attribute
    accepted = 0

    async def handle(client: anyio.abc.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        async with client:
            await answer(client)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield port
        assert accepted > 0, "no connection reached the server: the test did not exercise a handshake"
        tg.cancel_scope.cancel()


async def never_answer(client: anyio.abc.SocketStream) -> None:
    await anyio.sleep_forever()


async def answer_plain_text(client: anyio.abc.SocketStream) -> None:
    await client.receive()
    await client.send(b"HTTP/1.0 400 Bad Request\r\n\r\nthis port does not speak TLS\r\n")


def session(port: int, timeout: float = 5.0) -> SSCv2Session:
    device = DeviceConfig(id="rx", plugin="sennheiser-sscv2", host="127.0.0.1", port=port,
                          options={"verify_tls": False, "timeout": timeout})
    return SSCv2Session(device, on_update=lambda _: None)


async def test_a_handshake_cancelled_from_outside_closes_its_socket() -> None:
    before = open_fds()
    async with server(never_answer) as port:  # the server's own ends close when it stops
        s = session(port)
        for _ in range(5):
            with anyio.move_on_after(0.1) as scope:  # the poller's deadline, or a failing sibling request
                await s.get("/api/device/identity")
            assert scope.cancelled_caught
        await s.aclose()
    gc.collect()  # an orphaned socket would raise its ResourceWarning here (an error under pytest)
    assert open_fds() == before


@pytest.mark.parametrize(("answer", "timeout"), [(never_answer, 0.1), (answer_plain_text, 5.0)],
                         ids=["handshake-timeout", "not-tls"])
async def test_a_handshake_that_times_out_or_fails_closes_its_socket(
    answer: Callable[[anyio.abc.SocketStream], Awaitable[None]], timeout: float
) -> None:
    before = open_fds()
    async with server(answer) as port:
        s = session(port, timeout)
        for _ in range(5):
            with pytest.raises(PollError):
                await s.get("/api/device/identity")
        await s.aclose()
    gc.collect()
    assert open_fds() == before
