"""Run every probe over the given ranges with bounded concurrency and a bounded total time.

A fixed pool of ``concurrency`` workers takes (host, probe) jobs from a queue in host order, so at most that
many sockets are open and a /20 never becomes thousands of tasks. The MCP sweep shares one socket and runs
beside the workers; the SLP listener runs beside both and queues a Shure probe for every address it hears
that the ranges did not include. ``max_time`` cancels whatever is still running; what never ran is
counted, not hidden.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc

from micboard_exporter.discovery import sennheiser, shure
from micboard_exporter.discovery.outcome import Attempt, Found, Reason

#: Which probe wins when one address answers several (a ULX-D never also speaks SSC, but an EW-DX in
#: Secure mode with Legacy enabled answers both SSCv2 and SSC v1; SSCv2 is the better session).
PRIORITY: Final = (shure.TCP, shure.UDP, sennheiser.SSCV2, sennheiser.SSC, sennheiser.MCP)
LARGEST_WITHOUT_FORCE: Final = 20


@dataclass(frozen=True)
class Ports:
    """Protocol ports; the defaults are the devices' own, other values are for simulators on high ports."""

    shure: int = shure.SHURE_PORT
    sscv2: int = sennheiser.SSCV2_PORT
    ssc: int = sennheiser.SSC_PORT
    mcp: int = sennheiser.MCP_PORT


@dataclass(frozen=True)
class ScanOptions:
    """What to scan and how hard."""

    networks: tuple[ipaddress.IPv4Network, ...]
    reply_wait: float = 0.75
    concurrency: int = 64
    max_time: float = 300.0
    ports: Ports = field(default_factory=Ports)
    mcp_bind: str | None = None
    """Local address for the MCP socket; None: the address the routing table uses towards the ranges."""
    slp: shure.SlpListen | None = None


@dataclass(frozen=True)
class Progress:
    """Hosts done so far, for the progress bar."""

    hosts_done: int
    hosts_total: int
    found: int
    elapsed: float


@dataclass
class ScanResult:
    """Everything the summary and the fragment need."""

    options: ScanOptions
    hosts: list[str]
    attempts: list[Attempt] = field(default_factory=list)
    elapsed: float = 0.0
    not_tried: int = 0
    slp: shure.SlpReport | None = None
    slp_extra_hosts: list[str] = field(default_factory=list)
    mcp: sennheiser.McpReport | None = None

    @property
    def devices(self) -> list[Found]:
        """One device per address (the best protocol wins), in address order."""
        best: dict[str, Found] = {}
        for attempt in self.attempts:
            found = attempt.found
            if found is None:
                continue
            current = best.get(found.host)
            if current is None or PRIORITY.index(found.protocol) < PRIORITY.index(current.protocol):
                best[found.host] = found
        return [best[h] for h in sorted(best, key=ipaddress.ip_address)]

    def also_answered(self, found: Found) -> list[str]:
        """Other protocols the same address answered (shown next to the device)."""
        return sorted({a.protocol for a in self.attempts
                       if a.found is not None and a.host == found.host and a.protocol != found.protocol})


def expand(networks: Sequence[ipaddress.IPv4Network]) -> list[str]:
    """Every usable host address of the ranges, once, in order."""
    seen: dict[str, None] = {}
    for network in networks:
        for address in network.hosts():
            seen.setdefault(str(address), None)
    return list(seen)


_Job = Callable[[], Awaitable[Attempt]]
_PROBES_PER_HOST: Final = 5


async def scan(options: ScanOptions, on_progress: Callable[[Progress], None] | None = None) -> ScanResult:
    """Probe every host of ``options.networks``; never longer than ``options.max_time`` (plus a moment)."""
    hosts = expand(options.networks)
    result = ScanResult(options, hosts)
    started = anyio.current_time()
    wait, ports = options.reply_wait, options.ports
    # Probes still to report per host: four from the workers, one from the MCP sweep.
    remaining = dict.fromkeys(hosts, _PROBES_PER_HOST)
    done_hosts = 0
    limiter = anyio.CapacityLimiter(options.concurrency)
    send, receive = anyio.create_memory_object_stream[_Job](options.concurrency)

    def record(attempt: Attempt) -> None:
        nonlocal done_hosts
        result.attempts.append(attempt)
        left = remaining.get(attempt.host, 0)
        if left <= 0:
            return
        remaining[attempt.host] = left - 1
        if left == 1:
            done_hosts += 1
            if on_progress is not None:
                found = len({a.host for a in result.attempts if a.found is not None})
                on_progress(Progress(done_hosts, len(remaining), found, anyio.current_time() - started))

    async with sennheiser.sscv2_client(options.concurrency, wait) as client:

        def jobs_for(host: str, *, shure_only: bool = False) -> list[_Job]:
            jobs: list[_Job] = [
                lambda: shure.probe_tcp(host, ports.shure, wait),
                lambda: shure.probe_udp(host, ports.shure, wait),
            ]
            if not shure_only:
                jobs += [
                    lambda: sennheiser.probe_sscv2(client, host, ports.sscv2),
                    lambda: sennheiser.probe_ssc(host, ports.ssc, wait),
                ]
            return jobs

        async def worker() -> None:
            async for job in receive:
                async with limiter:
                    record(await job())

        async def feed(extra: anyio.Event) -> None:
            async with send:
                for host in hosts:
                    for job in jobs_for(host):
                        await send.send(job)
                await extra.wait()
                for host in result.slp_extra_hosts:
                    jobs = jobs_for(host, shure_only=True)
                    remaining[host] = len(jobs)
                    for job in jobs:
                        await send.send(job)

        async def mcp() -> None:
            bind = options.mcp_bind
            if bind is None:
                try:
                    bind = sennheiser.local_address_towards(hosts[0]) if hosts else "0.0.0.0"
                except OSError:
                    bind = "0.0.0.0"
            result.mcp = sennheiser.McpReport(bind, ports.mcp)
            await sennheiser.sweep_mcp(hosts, result.mcp, wait, record, limiter)

        async def slp(extra: anyio.Event) -> None:
            try:
                if options.slp is not None and options.slp.duration > 0:
                    in_range = set(hosts)

                    def heard(announcement: shure.SlpAnnouncement) -> None:
                        if announcement.host not in in_range:
                            result.slp_extra_hosts.append(announcement.host)

                    result.slp = await shure.listen_slp(options.slp, heard)
            finally:
                extra.set()

        with anyio.move_on_after(options.max_time):
            async with anyio.create_task_group() as tg:
                extra = anyio.Event()
                tg.start_soon(feed, extra)
                tg.start_soon(slp, extra)
                tg.start_soon(mcp)
                for _ in range(options.concurrency):
                    tg.start_soon(worker)
        receive.close()
    result.elapsed = anyio.current_time() - started
    result.not_tried = sum(remaining.values())
    return result


def missing_reason_counts(result: ScanResult, protocol: str) -> dict[Reason, int]:
    """How the attempts of one protocol ended, by reason."""
    counts: dict[Reason, int] = {}
    for attempt in result.attempts:
        if attempt.protocol == protocol:
            counts[attempt.reason] = counts.get(attempt.reason, 0) + 1
    return counts
