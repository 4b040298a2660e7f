"""``micboard-exporter discover``: find Shure and Sennheiser receivers on the network and suggest a config.

Active probes over the given ranges (Shure command strings on TCP 2202 and UHF-R on UDP 2202; Sennheiser
SSCv2 over HTTPS, SSC v1 on UDP 45, MCP on UDP 53212) and a bounded listen for Shure SLP multicast
announcements. The result is a YAML fragment for what answered, and a summary of what was scanned and, when
nothing answered, why. Modules: :mod:`.scan` runs the probes, :mod:`.shure` and :mod:`.sennheiser` hold them,
:mod:`.report` prints, :mod:`.outcome` holds the result types.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Final

import anyio

from micboard_exporter.discovery import scan as _scan
from micboard_exporter.discovery.report import ProgressPrinter, fragment, summary
from micboard_exporter.discovery.shure import SLP_GROUP, SLP_PORT, SlpListen
from micboard_exporter.durations import parse_duration

__all__ = ["add_parser", "run"]

_DEFAULT_TIMEOUT: Final = "750ms"
_DEFAULT_MAX_TIME: Final = "5m"
_DEFAULT_SLP: Final = "5s"


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Define ``discover``."""
    parser = subparsers.add_parser(
        "discover",
        help="scan address ranges for Shure and Sennheiser receivers and write a config fragment",
        description="Probe every address of the ranges for Shure (TCP/UDP 2202) and Sennheiser (SSCv2 HTTPS, "
                    "SSC v1 UDP 45, MCP UDP 53212) receivers, listen for Shure SLP announcements, and print a "
                    "config fragment for what answered plus a summary of what was scanned. Exit status: 0 when "
                    "something was found, 1 when nothing was, 2 for a usage error.",
    )
    parser.add_argument("--cidr", action="append", required=True, metavar="NETWORK",
                        help="IPv4 range to scan, e.g. 10.0.20.0/24 or a single address; repeat for several")
    parser.add_argument("--timeout", default=_DEFAULT_TIMEOUT, metavar="DURATION",
                        help=f"how long to wait for a connection or a reply, per step (default: {_DEFAULT_TIMEOUT})")
    parser.add_argument("--concurrency", type=int, default=64, metavar="N",
                        help="most probes in flight at once (default: 64)")
    parser.add_argument("--max-time", default=_DEFAULT_MAX_TIME, metavar="DURATION",
                        help=f"stop the whole scan after this long (default: {_DEFAULT_MAX_TIME})")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the config fragment to FILE instead of stdout")
    parser.add_argument("--force", action="store_true",
                        help=f"scan ranges larger than /{_scan.LARGEST_WITHOUT_FORCE}, and overwrite FILE")
    parser.add_argument("--first-slot", type=int, default=1, metavar="N",
                        help="number the found channels' wall-board slots from N (default: 1; 0: no slots)")
    parser.add_argument("--slp-listen", default=_DEFAULT_SLP, metavar="DURATION",
                        help=f"listen this long for Shure SLP multicast announcements on {SLP_GROUP}:{SLP_PORT} "
                             f"(default: {_DEFAULT_SLP}; 0: do not listen)")
    parser.add_argument("--mcp-bind", metavar="ADDR",
                        help="local address for the MCP socket on UDP 53212 (default: the address this machine "
                             "uses towards the first range)")
    dev = parser.add_argument_group("ports, for testing against simulators on high ports")
    dev.add_argument("--shure-port", type=int, default=_scan.Ports.shure, metavar="PORT",
                     help=f"Shure command-strings port, TCP and UDP (default: {_scan.Ports.shure})")
    dev.add_argument("--sscv2-port", type=int, default=_scan.Ports.sscv2, metavar="PORT",
                     help=f"Sennheiser SSCv2 HTTPS port (default: {_scan.Ports.sscv2})")
    dev.add_argument("--ssc-port", type=int, default=_scan.Ports.ssc, metavar="PORT",
                     help=f"Sennheiser SSC v1 UDP port (default: {_scan.Ports.ssc})")
    dev.add_argument("--mcp-port", type=int, default=_scan.Ports.mcp, metavar="PORT",
                     help=f"Sennheiser MCP UDP port, local and remote (default: {_scan.Ports.mcp})")
    dev.add_argument("--slp-port", type=int, default=SLP_PORT, metavar="PORT",
                     help=f"SLP port to listen on (default: {SLP_PORT})")
    parser.set_defaults(handler=run)


def _options(args: argparse.Namespace) -> _scan.ScanOptions:
    """Validated scan options; ``ValueError`` with a message for the user."""
    networks: list[ipaddress.IPv4Network] = []
    for text in args.cidr:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"--cidr {text!r} is not a network like 10.0.20.0/24 or an address") from None
        if not isinstance(network, ipaddress.IPv4Network):
            raise ValueError(f"--cidr {text}: IPv4 only (the receivers' control protocols are IPv4)")
        if network.prefixlen < _scan.LARGEST_WITHOUT_FORCE and not args.force:
            raise ValueError(f"--cidr {text} has {network.num_addresses} addresses; ranges larger than "
                             f"/{_scan.LARGEST_WITHOUT_FORCE} need --force")
        networks.append(network)
    wait = parse_duration(args.timeout)
    max_time = parse_duration(args.max_time)
    slp = parse_duration(args.slp_listen)
    if wait <= 0 or max_time <= 0:
        raise ValueError("--timeout and --max-time must be more than 0")
    if not 1 <= args.concurrency <= 1024:
        raise ValueError("--concurrency must be 1-1024")
    ports = _scan.Ports(shure=args.shure_port, sscv2=args.sscv2_port, ssc=args.ssc_port, mcp=args.mcp_port)
    listen = SlpListen(duration=min(slp, max_time), port=args.slp_port) if slp > 0 else None
    return _scan.ScanOptions(networks=tuple(networks), reply_wait=wait, concurrency=args.concurrency,
                             max_time=max_time, ports=ports, mcp_bind=args.mcp_bind, slp=listen)


def run(args: argparse.Namespace) -> int:
    """Execute ``discover``."""
    try:
        options = _options(args)
    except ValueError as exc:
        _err(f"discover: {exc}")
        return 2
    target = Path(args.output) if args.output else None
    if target is not None and target.exists() and not args.force:
        _err(f"discover: {target} exists; use --force to overwrite it")
        return 2
    printer = ProgressPrinter(sys.stderr, terminal=sys.stderr.isatty())
    result = anyio.run(lambda: _scan.scan(options, printer))
    printer.finish()
    _err(summary(result))
    if not result.devices:
        return 1
    text = fragment(result, first_slot=max(args.first_slot, 0))
    if target is None:
        sys.stdout.write(text)
    else:
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            _err(f"discover: cannot write {target}: {exc.strerror}")
            return 1
        _err(f"discover: config fragment written to {target}")
    return 0
