"""The ``micboard-exporter`` command line: run, check-config, plugins, simulate, demo."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import yaml

from micboard_exporter import __version__, discovery, micboard_import
from micboard_exporter.durations import parse_duration
from micboard_exporter.errors import ConfigErrors
from micboard_exporter.logsetup import setup_logging
from micboard_exporter.poller import parse_shard_index
from micboard_exporter.registry import PluginRegistry

log = logging.getLogger("micboard_exporter.cli")

COMMANDS = ("run", "check-config", "plugins", "simulate", "demo", "import-micboard", "discover")

#: The built-in demo fleet: real protocols over loopback where a simulator exists for the kind.
DEMO_FLEET: tuple[dict[str, Any], ...] = (
    {"kind": "shure-ulxd", "id": "stage-left-ulxd", "host": "127.0.0.1", "model": "ULXD4Q", "seed": 1},
    {"kind": "shure-axtd", "id": "stage-right-axient", "host": "127.0.0.1", "model": "AD4Q", "seed": 2},
    {"kind": "shure-qlxd", "id": "lectern-qlxd", "host": "127.0.0.1", "model": "QLXD4", "seed": 3},
    {"kind": "shure-slxd", "id": "choir-slxd", "host": "127.0.0.1", "model": "SLXD4D", "seed": 4},
    {"kind": "shure-uhfr", "id": "band-uhfr", "host": "127.0.0.1", "model": "UR4D", "seed": 5},
    {"kind": "shure-p10t", "id": "iem-psm1000", "host": "127.0.0.1", "model": "P10T", "seed": 6},
    {"kind": "sennheiser-ewdx", "id": "foh-ewdx", "host": "127.0.0.1", "seed": 7},
    {"kind": "sennheiser-ssc", "id": "booth-ssc", "host": "127.0.0.1", "seed": 8},
    {"kind": "sennheiser-mcp", "id": "wings-g4", "host": "127.0.0.2", "port": 53212, "seed": 9},
)


def _add_run_flags(p: argparse.ArgumentParser, *, config_required: bool) -> None:
    p.add_argument("--config", "-c", required=config_required, metavar="FILE",
                   help="YAML config file (see docs/configuration.md)")
    p.add_argument("--listen", metavar="ADDR",
                   help="address to serve HTTP on, e.g. :9798 or 127.0.0.1:9798 (overrides 'listen' in the config)")
    p.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                   help="exporter-toolkit web config: TLS, basic auth, headers (see docs/security.md)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log verbosity (default: info)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="log lines as human-readable text or as JSON objects (default: text)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate help in the docs)."""
    parser = argparse.ArgumentParser(
        prog="micboard-exporter",
        description="Prometheus exporter for wireless microphone fleets (Shure, Sennheiser and plugins).",
        epilog="Without a command, 'run' is assumed: micboard-exporter --config config.yaml",
    )
    parser.add_argument("--version", action="version", version=f"micboard-exporter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="poll the configured devices and serve /metrics (the default)")
    _add_run_flags(run, config_required=True)
    run.add_argument("--shard-index", default="0", metavar="N",
                     help="this replica's shard, 0-based; a StatefulSet pod name like 'name-2' also works")
    run.add_argument("--shard-count", type=int, default=1, metavar="M",
                     help="number of replicas splitting the devices by a stable hash of their id (default: 1)")

    check = sub.add_parser("check-config", help="validate a config file and exit (non-zero when invalid)")
    check.add_argument("file", metavar="FILE", help="YAML config file to validate")

    sub.add_parser("plugins", help="list installed plugins with version and distribution")

    sim = sub.add_parser("simulate", help="run simulated devices on loopback from a fleet file")
    sim.add_argument("--config", "-c", required=True, metavar="FILE", help="fleet file listing simulators")
    sim.add_argument("--exporter-config", metavar="FILE",
                     help="write an exporter config that polls the running fleet to FILE")
    sim.add_argument("--step", default="1s", metavar="DURATION",
                     help="advance the simulated world this often (default: 1s; 0 freezes it)")
    sim.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                     help="log verbosity (default: info)")

    micboard_import.add_parser(sub)
    discovery.add_parser(sub)

    demo = sub.add_parser("demo", help="start a mixed simulated fleet and the exporter polling it")
    _add_run_flags(demo, config_required=False)
    demo.set_defaults(listen=None)
    return parser


def _normalise_argv(argv: Sequence[str]) -> list[str]:
    args = list(argv)
    if args and args[0] not in COMMANDS and args[0] not in ("-h", "--help", "--version"):
        return ["run", *args]
    return args


def _print_config_errors(exc: ConfigErrors) -> None:
    print(f"configuration invalid ({len(exc.errors)} problem{'s' if len(exc.errors) != 1 else ''}):",
          file=sys.stderr)
    for err in exc.errors:
        print(f"  {err}", file=sys.stderr)


def cmd_check_config(path: str) -> int:
    """``check-config FILE``."""
    from micboard_exporter.config import load_config

    registry = PluginRegistry.discover()
    try:
        config = load_config(path, registry)
    except ConfigErrors as exc:
        _print_config_errors(exc)
        return 1
    plugins = sorted({d.plugin for d in config.devices})
    print(f"{path}: OK ({len(config.devices)} devices; plugins: {', '.join(plugins) or 'none'})")
    return 0


def cmd_plugins() -> int:
    """``plugins``."""
    registry = PluginRegistry.discover()
    rows = [("NAME", "VERSION", "DISTRIBUTION", "STATUS")]
    for entry in registry.entries.values():
        status = "ok" if entry.loaded else f"failed: {entry.error}"
        rows.append((entry.name, entry.version or "-", entry.distribution or "-", status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0 if all(e.loaded for e in registry.entries.values()) else 1


def _check_web_config(path: str | None) -> bool:
    """Validate ``--web.config.file`` before serving; print every problem and return False when invalid."""
    if path is None:
        return True
    from micboard_exporter.webconfig import load_web_config

    try:
        load_web_config(path)
    except ConfigErrors as exc:
        _print_config_errors(exc)
        return False
    return True


def cmd_run(args: argparse.Namespace) -> int:
    """``run``."""
    from micboard_exporter.app import Exporter

    try:
        shard_index = parse_shard_index(args.shard_index)
    except ValueError as exc:
        print(f"--shard-index: {exc}", file=sys.stderr)
        return 2
    if args.shard_count < 1 or not 0 <= shard_index < args.shard_count:
        print(f"--shard-index {shard_index} must be in 0..{args.shard_count - 1} (--shard-count {args.shard_count})",
              file=sys.stderr)
        return 2
    if not _check_web_config(args.web_config_file):
        return 1
    exporter = Exporter(args.config, PluginRegistry.discover(), listen=args.listen, shard_index=shard_index,
                        shard_count=args.shard_count, web_config_file=args.web_config_file)
    try:
        config = exporter.load()
    except ConfigErrors as exc:
        _print_config_errors(exc)
        return 1

    async def main() -> None:
        await exporter.apply(config)
        await exporter.run()

    try:
        anyio.run(main)
    except OSError as exc:
        log.error("cannot serve on %s: %s", exporter.listen, exc.strerror or exc)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """``simulate --config FLEET``."""
    from micboard_exporter.simulators.fleet import Fleet, parse_fleet

    try:
        doc = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
        specs = parse_fleet(doc, args.config)
        step = parse_duration(args.step)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 1
    fleet = Fleet(specs)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: fleet.run(step=step, task_status=task_status))
            for sim_id, device in fleet.devices.items():
                print(f"{sim_id:<24} {device.kind:<20} {device.model:<10} {device.host}:{device.port}", flush=True)
            if args.exporter_config:
                text = yaml.safe_dump(fleet.exporter_config(), sort_keys=False)
                await anyio.Path(args.exporter_config).write_text(text, encoding="utf-8")
                print(f"exporter config written to {args.exporter_config}", flush=True)

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the built-in fleet plus the exporter, in one process."""
    from micboard_exporter.app import Exporter
    from micboard_exporter.simulators.fleet import Fleet, parse_fleet, simulator_kinds

    if not _check_web_config(args.web_config_file):
        return 1
    kinds = simulator_kinds()
    entries = [dict(e) for e in DEMO_FLEET if e["kind"] in kinds]
    fleet = Fleet(parse_fleet({"simulators": entries}, "demo")) if entries else None
    listen = args.listen or ":9798"

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            config_doc: dict[str, Any] = {"listen": listen, "poll": {"interval": "2s", "timeout": "1500ms"},
                                          "devices": []}
            if fleet is not None:
                await tg.start(lambda task_status: fleet.run(step=1.0, task_status=task_status))
                config_doc = fleet.exporter_config(listen=listen)
            # Synthetic receivers fill the wall board beside the protocol simulators (batteries drain fast,
            # so low-battery colours and events show up within minutes).
            slot = 1 + sum(len(d.get("channels", {})) for d in config_doc["devices"])
            for i in range(1, 4):
                config_doc["devices"].append({
                    "id": f"synthetic-{i}", "plugin": "synthetic", "host": f"127.0.1.{i}",
                    "labels": {"room": "demo"}, "options": {"seed": i, "drain_speed": 20, "channels": 4},
                    "channels": {n: {"slot": slot + n - 1} for n in range(1, 5)},
                })
                slot += 4
            with tempfile.TemporaryDirectory(prefix="micboard-demo-") as tmp:
                path = Path(tmp) / "demo.yaml"
                path.write_text(yaml.safe_dump(config_doc, sort_keys=False), encoding="utf-8")
                exporter = Exporter(path, PluginRegistry.discover(), listen=listen,
                                    web_config_file=args.web_config_file)
                await exporter.apply(exporter.load())
                await exporter.run()
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except ConfigErrors as exc:
        _print_config_errors(exc)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(_normalise_argv(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "check-config":
        return cmd_check_config(args.file)
    if args.command == "plugins":
        return cmd_plugins()
    if args.command == "import-micboard":
        return micboard_import.run(args)
    if args.command == "discover":
        return discovery.run(args)
    setup_logging(args.log_level, getattr(args, "log_format", "text"))
    if args.command == "simulate":
        return cmd_simulate(args)
    if args.command == "demo":
        return cmd_demo(args)
    return cmd_run(args)
