"""Fault injection through the whole exporter: each fault is counted under the right reason, the healthy
devices' freshness keeps advancing, memory stays bounded, and the device comes back when the fault clears."""

from __future__ import annotations

import gc
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
import yaml
from reliability_helpers import FaultProxy, exporter_running, fake_resolver, peak_rss, scrape, value

from micboard_exporter.simulators.base import serving
from micboard_exporter.simulators.sennheiser_ssc import SennheiserSscSimulator
from micboard_exporter.simulators.sennheiser_sscv2 import SennheiserEwdxSimulator
from micboard_exporter.simulators.shure import ShureUlxdSimulator

pytestmark = pytest.mark.anyio

POLL = {"interval": "300ms", "timeout": "1500ms", "retries": 0, "breaker": {"failures": 1000, "max_interval": "1s"}}
#: Peak RSS growth allowed while a fault is on (a 50 MB body or a 1 MB line must not be held).
PEAK_LIMIT = 30 * 1024 * 1024


def config(devices: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"poll": POLL, "devices": devices}, sort_keys=False)


async def wait_for(client: httpx.AsyncClient, check: Callable[[Any], bool], what: str, timeout: float = 15) -> Any:
    samples = None
    try:
        with anyio.fail_after(timeout):
            while True:
                samples = await scrape(client)
                if check(samples):
                    return samples
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def errors(samples: Any, device: str, reason: str) -> float:
    return value(samples, "micboard_poll_errors_total", device=device, reason=reason) or 0.0


async def exercise(client: httpx.AsyncClient, faulty: str, reason: str, inject: Callable[[], Awaitable[None]],
                   clear: Callable[[], Awaitable[None]], *, healthy: tuple[str, ...] = ("good-shure", "good-synth"),
                   start_up: bool = True) -> None:
    """The whole scenario for one fault."""
    everyone = (*healthy, faulty) if start_up else healthy
    await wait_for(client, lambda s: all(value(s, "micboard_device_up", device=d) == 1 for d in everyone),
                   "every device up before the fault")
    before = await scrape(client)
    with peak_rss() as peak:
        await inject()
        after = await wait_for(
            client, lambda s: errors(s, faulty, reason) > errors(before, faulty, reason)
            and value(s, "micboard_device_up", device=faulty) == 0, f"{faulty} counted as {reason}")
        # Freshness of the healthy devices keeps advancing while the fault is on.
        stamp = {d: value(after, "micboard_device_last_success_timestamp_seconds", device=d) or 0 for d in healthy}
        await wait_for(client, lambda s: all(
            (value(s, "micboard_device_last_success_timestamp_seconds", device=d) or 0) > stamp[d]
            and value(s, "micboard_device_up", device=d) == 1 for d in healthy), "healthy devices advancing")
    assert peak[0] < PEAK_LIMIT, f"peak RSS grew {peak[0] / 1e6:.1f} MB during the fault"
    await clear()
    await wait_for(client, lambda s: value(s, "micboard_device_up", device=faulty) == 1, f"{faulty} recovering")


def shure_entry(sim: ShureUlxdSimulator, device_id: str, port: int | None = None) -> dict[str, Any]:
    entry = sim.exporter_device(device_id)
    options = dict(entry.get("options", {}))
    options.update({"meter_rate": "0", "reply_timeout": "700ms"})
    entry["options"] = options
    if port is not None:
        entry["port"] = port
    return entry


BASE_DEVICES: list[dict[str, Any]] = [{"id": "good-synth", "plugin": "synthetic", "host": "127.0.0.1"}]


@pytest.mark.parametrize(("fault", "reason"), [
    ("stall", "timeout"),
    ("close_mid_frame", "protocol"),
    ("garbage", "protocol"),
    ("drip", "timeout"),
])
async def test_shure_receiver_faults(tmp_path: Path, fault: str, reason: str) -> None:
    good, bad = ShureUlxdSimulator(seed=1), ShureUlxdSimulator(seed=2)
    async with serving(good, bad):
        devices = [*BASE_DEVICES, shure_entry(good, "good-shure"), shure_entry(bad, "bad")]
        async with exporter_running(config(devices), tmp_path) as (_, client, _):
            async def inject() -> None:
                if fault == "drip":
                    bad.faults.drip_interval = 1.0  # a byte a second
                else:
                    setattr(bad.faults, fault, True)

            async def clear() -> None:
                bad.faults.drip_interval = 0.0
                setattr(bad.faults, fault if fault != "drip" else "split_bytes", False)

            await exercise(client, "bad", reason, inject, clear)


@pytest.mark.parametrize(("mode", "reason"), [("flood", "protocol"), ("refuse", "unreachable"),
                                            ("flap", "unreachable")])
async def test_shure_through_fault_proxy(tmp_path: Path, mode: str, reason: str) -> None:
    """``flood``: a 1 MB line with no frame end; ``refuse``: the device goes away (open sessions dropped);
    ``flap``: it goes away and comes back every second."""
    good, bad = ShureUlxdSimulator(seed=1), ShureUlxdSimulator(seed=2)
    proxy = FaultProxy(0)
    async with serving(good, bad):
        proxy.upstream_port = bad.port
        async with serving(proxy), anyio.create_task_group() as tg:
            devices = [*BASE_DEVICES, shure_entry(good, "good-shure"), shure_entry(bad, "bad", proxy.port)]
            async with exporter_running(config(devices), tmp_path) as (_, client, _):
                async def flap() -> None:
                    while True:
                        proxy.set_mode("refuse" if proxy.mode == "pass" else "pass")
                        await anyio.sleep(1.0)

                async def inject() -> None:
                    if mode == "flap":
                        tg.start_soon(flap)
                    else:
                        proxy.set_mode(mode)

                async def clear() -> None:
                    tg.cancel_scope.cancel()
                    proxy.set_mode("pass")

                await exercise(client, "bad", reason, inject, clear)


async def test_host_name_that_does_not_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rack.invalid`` fails at once and offline (a guard answers NXDOMAIN and forbids any other lookup);
    when the name starts resolving (the DNS record is fixed) the device comes up."""
    zone: dict[str, str] = {}
    guarded = fake_resolver(socket.getaddrinfo)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in zone:
            return guarded(zone[name], port, *args, **kwargs)
        return guarded(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    good, bad = ShureUlxdSimulator(seed=1), ShureUlxdSimulator(seed=2)
    async with serving(good, bad):
        entry = shure_entry(bad, "bad")
        entry["host"] = "rack.invalid"
        devices = [*BASE_DEVICES, shure_entry(good, "good-shure"), entry]
        async with exporter_running(config(devices), tmp_path) as (_, client, _):
            async def nothing() -> None:
                return None

            async def fix_dns() -> None:
                zone["rack.invalid"] = "127.0.0.1"

            started = anyio.current_time()
            await exercise(client, "bad", "unreachable", nothing, fix_dns, start_up=False)
            assert anyio.current_time() - started < 30


def sscv2_entry(sim: SennheiserEwdxSimulator, device_id: str, port: int) -> dict[str, Any]:
    entry = sim.exporter_device(device_id)
    entry["port"] = port
    entry["options"] = {**entry.get("options", {}), "timeout": 1.0}
    return entry


@pytest.mark.parametrize(("mode", "reason"), [
    # A TLS handshake failure: a socket closed on every way out of the handshake, cancellation included.
    ("not-tls", "unreachable"),
    ("http-500", "unreachable"),
    ("http-429", "unreachable"),
    ("http-huge", "protocol"),  # 50 MB JSON body, streamed lazily by the proxy
])
async def test_sscv2_http_faults(tmp_path: Path, mode: str, reason: str) -> None:
    good, bad = ShureUlxdSimulator(seed=1), SennheiserEwdxSimulator(seed=3)
    proxy = FaultProxy(0)
    async with serving(good, bad):
        proxy.upstream_port = bad.port
        async with serving(proxy):
            devices = [*BASE_DEVICES, shure_entry(good, "good-shure"), sscv2_entry(bad, "bad", proxy.port)]
            async with exporter_running(config(devices), tmp_path) as (_, client, _):
                pauses: list[tuple[float, int]] = []  # (time the fault began, requests so far) per pause

                async def inject() -> None:
                    proxy.requests = 0
                    proxy.retry_after = "2"
                    proxy.set_mode(mode)
                    pauses.append((anyio.current_time(), 0))

                async def clear() -> None:
                    if mode == "http-429":  # long enough for one pause to end and the next to begin
                        await anyio.sleep(max(0.0, pauses[0][0] + 2.5 - anyio.current_time()))
                    pauses.append((anyio.current_time(), proxy.requests))
                    proxy.set_mode("pass")

                await exercise(client, "bad", reason, inject, clear)
                if mode == "http-huge":
                    # The body was really being sent, and the exporter stopped reading at its cap.
                    assert 0 < proxy.huge_sent < proxy.huge_bytes
                if mode == "http-429":
                    # Retry-After: 2 is honoured: after the first answer, the polls and the event stream
                    # wait it out, so the device sees one round of requests (those already in flight
                    # when the first 429 came: at most 4 GETs and the stream) per 2 s, not one per poll.
                    (began, _), (ended, requests) = pauses
                    assert requests <= 5 * (1 + int((ended - began) / 2)), (requests, ended - began)
    gc.collect()  # a leaked socket would warn (and fail) here, in this test, not in whichever test runs next


async def test_sscv2_stalled_device_and_event_stream(tmp_path: Path) -> None:
    """A device that stops answering, with its event stream open: polls time out, the stream is dropped,
    and both come back when it answers again."""
    good, bad = ShureUlxdSimulator(seed=1), SennheiserEwdxSimulator(seed=3)
    async with serving(good, bad):
        entry = sscv2_entry(bad, "bad", bad.port)
        entry["options"]["sse_idle_timeout"] = 1.0
        devices = [*BASE_DEVICES, shure_entry(good, "good-shure"), entry]
        async with exporter_running(config(devices), tmp_path) as (_, client, _):
            async def inject() -> None:
                bad.faults.stall = True

            async def clear() -> None:
                bad.faults.stall = False

            await exercise(client, "bad", "timeout", inject, clear)


class _UdpSpoofer:
    """Between the exporter and an SSC simulator: forwards requests, and sends each answer back either from
    the device's address and port (``pass``) or from another port and another loopback address."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.port = 0
        self.spoofed = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        front = await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.1")
        self.port = int(front.extra(anyio.abc.SocketAttribute.local_port))  # noqa: S610 - anyio attribute
        back = await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.1")
        other_port = await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.1")
        other_host = await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.3",
                                                   local_port=self.port)
        task_status.started()
        clients: list[tuple[str, int]] = []
        async with front, back, other_port, other_host, anyio.create_task_group() as tg:
            async def answers() -> None:
                async for data, _ in back:
                    for peer in clients[-1:]:
                        if self.mode == "pass":
                            await front.sendto(data, *peer)
                        else:
                            self.spoofed += 1
                            await other_port.sendto(data, *peer)
                            await other_host.sendto(data, *peer)

            tg.start_soon(answers)
            async for data, peer in front:
                if peer not in clients:
                    clients.append(peer)
                await back.sendto(data, "127.0.0.1", self.upstream)


async def test_ssc_udp_answers_from_the_wrong_address_or_port_are_ignored(tmp_path: Path) -> None:
    good, bad = ShureUlxdSimulator(seed=1), SennheiserSscSimulator(seed=4)
    async with serving(good, bad):
        spoofer = _UdpSpoofer(bad.port)
        async with serving(spoofer):  # type: ignore[arg-type]
            entry = bad.exporter_device("bad")
            entry["port"] = spoofer.port
            entry["options"] = {**entry.get("options", {}), "timeout": 0.6}
            devices = [*BASE_DEVICES, shure_entry(good, "good-shure"), entry]
            async with exporter_running(config(devices), tmp_path) as (_, client, _):
                async def inject() -> None:
                    spoofer.mode = "spoof"

                async def clear() -> None:
                    spoofer.mode = "pass"

                await exercise(client, "bad", "timeout", inject, clear)
                assert spoofer.spoofed > 0
