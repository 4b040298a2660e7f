"""SSCv2 honours ``Retry-After`` on HTTP 429 and 503: nothing is sent to the device before the time it asks
for (capped at five minutes), each refused poll is a transient error that says when the next request goes
out, and the event stream waits too."""

from __future__ import annotations

import email.utils
from collections.abc import Iterator

import anyio
import httpx
import pytest
import respx
from sennheiser_helpers import MOCKED_BASE as BASE
from sennheiser_helpers import mocked_sscv2_device as cfg

from micboard_exporter.errors import DeviceUnreachable
from micboard_exporter.plugins.sennheiser.sscv2 import SSCv2Plugin
from micboard_exporter.plugins.sennheiser.sscv2.codec import SUBSCRIPTIONS_PATH, parse_retry_after
from micboard_exporter.plugins.sennheiser.sscv2.session import RETRY_AFTER_MAX_S, SSCv2Session

pytestmark = pytest.mark.anyio

IDENTITY = "/api/device/identity"
WALL = 1_700_000_000.0  # a fixed wall clock for HTTP-date answers


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def busy(status: int = 429, retry_after: str | None = "30") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers)


OK = httpx.Response(200, json={"product": "EWDX2CHS", "serial": "1023456789"})


# ------------------------------------------------------------------------------------------------ codec


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("9" * 5000, float("inf")),  # absurd, but still "long": the session caps it
    (email.utils.formatdate(WALL + 90, usegmt=True), 90.0),  # IMF-fixdate
    (email.utils.formatdate(WALL - 60, usegmt=True), -60.0),  # already over
    ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0 - WALL),  # obsolete RFC 850 form
    ("Sun Nov  6 08:49:37 1994", 784111777.0 - WALL),  # obsolete asctime form, no zone = GMT
    ("soon", None),
    ("", None),
    ("-5", None),
    ("1.5", None),
    ("١٢", None),  # Arabic-Indic digits are digits to str.isdigit, not to HTTP
])
def test_parse_retry_after(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header, WALL) == seconds


# ------------------------------------------------------------------------------------------------ session


async def test_429_pauses_every_request_until_the_time_the_device_asked_for(router: respx.MockRouter) -> None:
    route = router.get(IDENTITY).mock(side_effect=[busy(retry_after="30"), OK])
    clock = Clock()
    session = SSCv2Session(cfg(), on_update=lambda _: None, clock=clock, wall_clock=lambda: WALL)
    try:
        with pytest.raises(DeviceUnreachable, match=r"HTTP 429; Retry-After: 30, next request in 30 s") as info:
            await session.get(IDENTITY)
        assert info.value.transient
        clock.now += 29.5
        with pytest.raises(DeviceUnreachable, match=r"not sent.*HTTP 429 with Retry-After: 30.*next request in 0\.5 s"):
            await session.get(IDENTITY)
        assert route.call_count == 1, "a request reached the device during its pause"
        clock.now += 0.6
        assert (await session.get(IDENTITY))["serial"] == "1023456789"
        assert route.call_count == 2
        assert session.hold_remaining == 0.0
    finally:
        await session.aclose()


async def test_an_http_date_is_measured_on_the_wall_clock(router: respx.MockRouter) -> None:
    router.get(IDENTITY).mock(return_value=busy(retry_after=email.utils.formatdate(WALL + 120, usegmt=True)))
    session = SSCv2Session(cfg(), on_update=lambda _: None, clock=Clock(), wall_clock=lambda: WALL)
    try:
        with pytest.raises(DeviceUnreachable, match="next request in 120 s"):
            await session.get(IDENTITY)
        assert session.hold_remaining == 120.0
    finally:
        await session.aclose()


async def test_a_pause_is_capped_so_a_device_is_never_dark_for_hours(router: respx.MockRouter) -> None:
    router.get(IDENTITY).mock(return_value=busy(retry_after="86400"))
    session = SSCv2Session(cfg(), on_update=lambda _: None, clock=Clock(), wall_clock=lambda: WALL)
    try:
        with pytest.raises(DeviceUnreachable, match=f"next request in {RETRY_AFTER_MAX_S:g} s"):
            await session.get(IDENTITY)
        assert session.hold_remaining == RETRY_AFTER_MAX_S
    finally:
        await session.aclose()


async def test_503_with_retry_after_pauses_too(router: respx.MockRouter) -> None:
    route = router.get(IDENTITY).mock(return_value=busy(503, "10"))
    clock = Clock()
    session = SSCv2Session(cfg(), on_update=lambda _: None, clock=clock, wall_clock=lambda: WALL)
    try:
        with pytest.raises(DeviceUnreachable, match="HTTP 503; Retry-After: 10"):
            await session.get(IDENTITY)
        with pytest.raises(DeviceUnreachable, match="not sent"):
            await session.get(IDENTITY)
        assert route.call_count == 1
    finally:
        await session.aclose()


@pytest.mark.parametrize(("status", "retry_after", "note"), [
    (429, None, ""),  # no header: an ordinary transient error, the poll interval paces us
    (429, "0", ""),
    (429, email.utils.formatdate(WALL - 5, usegmt=True), ""),  # a date already past
    (429, "whenever", "unusable Retry-After 'whenever' ignored"),
    (500, "60", ""),  # Retry-After means nothing on a 500 (RFC 9110 §10.2.3)
])
async def test_no_pause_without_a_usable_future_retry_after(
    router: respx.MockRouter, status: int, retry_after: str | None, note: str
) -> None:
    route = router.get(IDENTITY).mock(side_effect=[busy(status, retry_after), OK])
    session = SSCv2Session(cfg(), on_update=lambda _: None, clock=Clock(), wall_clock=lambda: WALL)
    try:
        with pytest.raises(DeviceUnreachable, match=f"HTTP {status}") as info:
            await session.get(IDENTITY)
        assert note in str(info.value)
        assert "next request in" not in str(info.value)
        assert session.hold_remaining == 0.0
        await session.get(IDENTITY)
        assert route.call_count == 2
    finally:
        await session.aclose()


async def test_the_event_stream_waits_for_the_pause_before_reconnecting(router: respx.MockRouter) -> None:
    stream = router.get(SUBSCRIPTIONS_PATH).mock(return_value=busy(retry_after="12"))
    slept: list[float] = []
    asleep = anyio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        asleep.set()
        await anyio.sleep_forever()

    clock = Clock()
    session = SSCv2Session(cfg(subscribe=True), on_update=lambda _: None, sleep=sleep, clock=clock,
                           wall_clock=lambda: WALL)
    try:
        session.subscribe(["/api/channel/0/level"])
        with anyio.fail_after(5):
            await asleep.wait()
        assert stream.call_count == 1
        # The reconnect backoff alone would be about half a second; the device asked for twelve.
        assert slept == [12.0]
        assert isinstance(session.last_stream_error, DeviceUnreachable)
        assert "Retry-After: 12" in str(session.last_stream_error)
    finally:
        await session.aclose()


# ------------------------------------------------------------------------------------------------ plugin


async def test_a_poll_during_the_pause_sends_nothing(router: respx.MockRouter) -> None:
    """Through the plugin: the poll's concurrent reads stop at the first 429, and the next poll fails at
    once, as a transient error, without a single request reaching the device."""
    router.get(IDENTITY).mock(return_value=OK)
    router.get(url__regex=r"/api/.*").mock(return_value=busy(retry_after="60"))
    plugin = SSCv2Plugin()
    try:
        with pytest.raises(DeviceUnreachable, match="HTTP 429; Retry-After: 60"):
            await plugin.poll(cfg())
        sent = len(router.calls)
        with pytest.raises(DeviceUnreachable, match=r"not sent.*next request in (59|60)\.\d s") as info:
            await plugin.poll(cfg())
        assert info.value.transient
        assert len(router.calls) == sent
    finally:
        await plugin.aclose()
