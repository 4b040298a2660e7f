"""What ``discover`` shows: a progress bar (or plain lines), the summary with its "why", and the config fragment."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final, TextIO

from micboard_exporter.discovery import sennheiser, shure
from micboard_exporter.discovery.outcome import Found, Reason
from micboard_exporter.discovery.scan import Progress, ScanResult, missing_reason_counts
from micboard_exporter.micboard_import import Flow, dump_devices

_BAR_WIDTH: Final = 30
_PROTOCOLS: Final = (
    (shure.TCP, "Shure TCP {shure}"),
    (shure.UDP, "Shure UHF-R UDP {shure}"),
    (sennheiser.SSCV2, "Sennheiser SSCv2 HTTPS {sscv2}"),
    (sennheiser.SSC, "Sennheiser SSC v1 UDP {ssc}"),
    (sennheiser.MCP, "Sennheiser MCP UDP {mcp}"),
)
_DEFAULT_PORTS: Final = {"shure": shure.SHURE_PORT, "sscv2": sennheiser.SSCV2_PORT, "ssc": sennheiser.SSC_PORT,
                         "mcp": sennheiser.MCP_PORT}


class ProgressPrinter:
    """A one-line bar redrawn in place on a terminal; a plain line per tenth of the hosts otherwise."""

    def __init__(self, stream: TextIO, *, terminal: bool) -> None:
        self.stream = stream
        self.terminal = terminal
        self._last_tenth = -1
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        """Show ``progress``."""
        total = max(progress.hosts_total, 1)
        share = min(progress.hosts_done / total, 1.0)
        if self.terminal:
            filled = round(share * _BAR_WIDTH)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {progress.hosts_done}/{progress.hosts_total} hosts, "
                              f"{progress.found} found, {progress.elapsed:.1f}s ")
            self._drawn = True
        else:
            tenth = int(share * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(f"discover: {progress.hosts_done}/{progress.hosts_total} hosts ({share:.0%}), "
                              f"{progress.found} found, {progress.elapsed:.1f}s\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line so the summary starts on a fresh one."""
        if self.terminal and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _count_text(counts: dict[Reason, int]) -> str:
    order = list(Reason)
    parts = [f"{n} {reason.value}" for reason, n in sorted(counts.items(), key=lambda kv: order.index(kv[0]))]
    return ", ".join(parts) or "not tried"


def summary(result: ScanResult) -> str:
    """The scan in a few lines: ranges, hosts, replies per protocol, time, and why nothing was found."""
    opts = result.options
    ports = {"shure": opts.ports.shure, "sscv2": opts.ports.sscv2, "ssc": opts.ports.ssc, "mcp": opts.ports.mcp}
    ranges = ", ".join(str(n) for n in opts.networks)
    lines = [f"scanned {ranges}: {len(result.hosts)} host{'s' if len(result.hosts) != 1 else ''} in "
             f"{result.elapsed:.1f}s (reply timeout {opts.reply_wait * 1000:g}ms, concurrency {opts.concurrency})"]
    for protocol, label in _PROTOCOLS:
        counts = missing_reason_counts(result, protocol)
        where = label.format(**ports)
        if protocol == sennheiser.MCP and result.mcp is not None:
            where += f" from {result.mcp.bind}"
        lines.append(f"  {where}: {_count_text(counts)}")
    if result.mcp is not None and result.mcp.error:
        lines.append(f"  MCP: {result.mcp.error}")
    lines.append(f"  {_slp_line(result)}")
    if result.slp_extra_hosts:
        lines.append(f"  SLP named {len(result.slp_extra_hosts)} address(es) outside the ranges, probed too: "
                     + ", ".join(result.slp_extra_hosts))
    if result.not_tried:
        lines.append(f"  stopped by --max-time after {opts.max_time:g}s: {result.not_tried} probes not run")
    devices = result.devices
    if devices:
        lines.append(f"found {len(devices)} device{'s' if len(devices) != 1 else ''}:")
        for found in devices:
            lines.append(f"  {found.host:<15} {_describe(found)}")
    else:
        lines.append("found nothing. Why:")
        lines += [f"  {why}" for why in explain_nothing(result)]
    garbage = sum(1 for a in result.attempts if a.reason is Reason.GARBAGE)
    if garbage:
        hosts = sorted({a.host for a in result.attempts if a.reason is Reason.GARBAGE}, key=ipaddress.ip_address)
        lines.append(f"  {garbage} answer(s) were not well-formed device replies and were not counted "
                     f"({', '.join(hosts[:5])}{', ...' if len(hosts) > 5 else ''})")
    return "\n".join(lines)


def _slp_line(result: ScanResult) -> str:
    report = result.slp
    if report is None:
        return "SLP multicast: not listened (--slp-listen 0)"
    where = f"{report.listen.group or report.listen.bind}:{report.listen.port}"
    if report.status == "unavailable":
        return f"SLP multicast {where}: {report.error}; multicast not received"
    heard = len(report.heard)
    text = f"SLP multicast {where}: listened {report.listen.duration:g}s, {heard} Shure announcement(s)"
    if heard == 0:
        text += (" - multicast not received. Shure devices announce on the local segment only; a container "
                 "without host networking, a VM behind NAT, Wi-Fi isolation or a switch without IGMP "
                 "snooping cannot see it (the active probes above do not depend on it)")
        if report.datagrams:
            text += f"; {report.datagrams} other datagram(s) on the group"
    return text


def explain_nothing(result: ScanResult) -> list[str]:
    """Why an empty result is empty, from how the probes ended."""
    attempts = [a for a in result.attempts if a.protocol != sennheiser.MCP or a.reason is not Reason.ERROR]
    if not result.hosts:
        return ["the ranges hold no host addresses"]
    if not attempts:
        return ["no probe finished before --max-time"]
    reasons = {a.reason for a in attempts}
    tcp = [a for a in attempts if a.protocol in (shure.TCP, sennheiser.SSCV2)]
    tcp_reasons = {a.reason for a in tcp}
    whys: list[str] = []
    if reasons <= {Reason.NO_ROUTE}:
        whys.append("no route: this machine has no network path to these ranges. Check the laptop's address "
                    "and VLAN (ip -4 addr; ip route) or plug into the AV network.")
    elif reasons <= {Reason.HOST_UNREACHABLE, Reason.NO_ROUTE}:
        whys.append("host unreachable: nothing at these addresses answered ARP on the local segment; the "
                    "receivers are off, on another subnet, or the range is wrong.")
    elif tcp and tcp_reasons <= {Reason.REFUSED}:
        whys.append(f"all refused: every host answered, but none listens on TCP {result.options.ports.shure} "
                    f"or HTTPS {result.options.ports.sscv2}. These are not Shure or Sennheiser receivers, or "
                    "their network control is off (Sennheiser: enable third-party access in Control Cockpit).")
    elif tcp and tcp_reasons <= {Reason.TIMEOUT, Reason.HOST_UNREACHABLE}:
        whys.append(f"timed out: nothing answered within {result.options.reply_wait * 1000:g}ms. The devices are "
                    "off, a firewall drops the probes, or the range is wrong; try a longer --timeout (2s).")
    silent = sorted({a.host for a in attempts if a.reason is Reason.SILENT})
    if silent:
        whys.append(f"{len(silent)} host(s) accept TCP {result.options.ports.shure} but answer nothing: an SLX-D "
                    "with third-party control off (Menu > Advanced > Network > Allow Third-Party Controls): "
                    + ", ".join(silent[:5]))
    if not whys:
        counts = {r.value: sum(1 for a in attempts if a.reason is r) for r in reasons}
        whys.append("no device identified itself; probes ended: "
                    + ", ".join(f"{n} {name}" for name, n in sorted(counts.items())))
    if result.slp is not None and not result.slp.heard:
        whys.append("multicast not received (see the SLP line above)")
    return whys


def _describe(found: Found) -> str:
    what = found.model or found.family or "(model unknown)"
    channels = f", {found.channels} channel{'s' if found.channels != 1 else ''}" if found.channels else ""
    family = f" ({found.family}{channels})" if found.family else (f" ({channels[2:]})" if channels else "")
    named = f" named {found.name!r}" if found.name else ""
    return f"{found.plugin} {what}{family}{named} via {found.protocol}"


# --------------------------------------------------------------------------------------------- fragment


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def suggested_id(found: Found) -> str:
    """From the device's name, else model (or family) plus address: ``stage-left``, ``ulxd4q-10-0-20-11``."""
    if found.name and _slug(found.name):
        return _slug(found.name)[:64]
    base = _slug(found.model or found.family or found.plugin) or "device"
    return f"{base}-{_slug(found.host)}"[:64]


def fragment(result: ScanResult, *, first_slot: int = 1) -> str:
    """A config document with one device per answering address, comments saying what it is and what to do."""
    devices = result.devices
    ranges = ", ".join(str(n) for n in result.options.networks)
    lines = [f"# Found by `micboard-exporter discover` in {ranges}: {len(devices)} device(s).",
             "# Check the ids, add passwords where noted, then `micboard-exporter check-config FILE`."]
    used: set[str] = set()
    slot = first_slot
    entries: list[tuple[Found, dict[str, Any]]] = []
    for found in devices:
        dev_id = suggested_id(found)
        if dev_id in used:
            dev_id = f"{dev_id[:48]}-{_slug(found.host)}"
        used.add(dev_id)
        entry: dict[str, Any] = {"id": dev_id, "plugin": found.plugin, "host": found.host}
        if found.port != _DEFAULT_PORTS[_port_key(found.protocol)]:
            entry["port"] = found.port
        if found.options:
            entry["options"] = Flow(found.options)
        if first_slot > 0 and found.channels:
            entry["channels"] = {n: Flow(slot=slot + n - 1) for n in range(1, found.channels + 1)}
            slot += found.channels
        entries.append((found, entry))
    if not entries:
        lines.append("devices: []")
    else:
        lines.append("devices:")
        for found, entry in entries:
            lines.append(f"  # {_describe(found)}: {found.evidence}")
            also = result.also_answered(found)
            if also:
                lines.append(f"  # also answered: {', '.join(also)}")
            lines += [f"  # TODO: {note}" for note in found.notes]
            body = dump_devices([entry]).split("\n", 1)[1]  # drop the "devices:" line
            lines += ["  " + line for line in body.rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def _port_key(protocol: str) -> str:
    return {shure.TCP: "shure", shure.UDP: "shure", sennheiser.SSCV2: "sscv2", sennheiser.SSC: "ssc",
            sennheiser.MCP: "mcp"}[protocol]
