"""``discover`` against real simulators on loopback addresses: what answers, what does not, and why."""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
import yaml

from micboard_exporter.cli import main
from micboard_exporter.config import parse_config
from micboard_exporter.discovery.scan import Ports, ScanOptions, scan
from micboard_exporter.discovery.shure import SlpListen, parse_slp
from micboard_exporter.registry import PluginRegistry
from micboard_exporter.simulators.base import SimulatedDevice
from micboard_exporter.simulators.sennheiser_mcp import SennheiserMcpSimulator
from micboard_exporter.simulators.sennheiser_ssc import SennheiserSscSimulator
from micboard_exporter.simulators.sennheiser_sscv2 import SennheiserEwdxSimulator
from micboard_exporter.simulators.shure import (
    ShureAxtdSimulator,
    ShureQlxdSimulator,
    ShureUhfrSimulator,
    ShureUlxdSimulator,
)


def _subnet() -> str:
    # A random 127.a.b.0/27 keeps this suite's simulators (and its MCP socket) apart from other suites
    # running at the same time on 127.0.0.x.
    return f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"


def _free_port(host: str) -> int:
    """A port free for both TCP and UDP on ``host``."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@contextmanager
def running(devices: list[SimulatedDevice]) -> Iterator[None]:
    """Serve the simulators on their own event loop in a thread while the (synchronous) CLI runs."""
    with anyio.from_thread.start_blocking_portal() as portal:
        scope: list[anyio.CancelScope] = []

        async def serve_all(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            async with anyio.create_task_group() as tg:
                scope.append(tg.cancel_scope)
                for device in devices:
                    await tg.start(device.serve)
                task_status.started()

        future, _ = portal.start_task(serve_all)
        try:
            yield
        finally:
            portal.call(scope[0].cancel)
            future.exception(timeout=10)


@pytest.fixture
def net() -> dict[str, Any]:
    """Addresses and ports of one test's simulated rack."""
    base = _subnet()
    return {"base": base, "cidr": f"{base}.0/27", "shure": _free_port(f"{base}.2"),
            "sscv2": _free_port(f"{base}.6"), "ssc": _free_port(f"{base}.7"), "mcp_bind": f"{base}.200"}


def _argv(net: dict[str, Any], *extra: str, cidrs: tuple[str, ...] = ()) -> list[str]:
    ranges = [arg for cidr in (cidrs or (net["cidr"],)) for arg in ("--cidr", cidr)]
    return ["discover", *ranges, "--timeout", "300ms", "--slp-listen", "0",
            "--shure-port", str(net["shure"]), "--sscv2-port", str(net["sscv2"]), "--ssc-port", str(net["ssc"]),
            "--mcp-bind", net["mcp_bind"], *extra]


def _rack(net: dict[str, Any]) -> list[SimulatedDevice]:
    b = net["base"]
    return [
        ShureUlxdSimulator(host=f"{b}.2", port=net["shure"], model="ULXD4Q", seed=1),
        ShureQlxdSimulator(host=f"{b}.3", port=net["shure"], seed=2),
        ShureAxtdSimulator(host=f"{b}.4", port=net["shure"], model="AD4D", seed=3),
        ShureUhfrSimulator(host=f"{b}.5", port=net["shure"], model="UR4D", seed=4),
        SennheiserEwdxSimulator(host=f"{b}.6", port=net["sscv2"], model="EWDX2CHDS", seed=5),
        SennheiserSscSimulator(host=f"{b}.7", port=net["ssc"], seed=6),
        SennheiserMcpSimulator(host=f"{b}.8", seed=7),
    ]


def test_discovers_a_mixed_rack(net: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = net["base"]
    noisy: list[SimulatedDevice] = [
        ShureUlxdSimulator(host=f"{b}.9", port=net["shure"], model="ULXD4D", seed=8),
        ShureUhfrSimulator(host=f"{b}.10", port=net["shure"], seed=9),
        SennheiserEwdxSimulator(host=f"{b}.11", port=net["sscv2"], seed=10),
        SennheiserSscSimulator(host=f"{b}.12", port=net["ssc"], seed=11),
        SennheiserMcpSimulator(host=f"{b}.13", seed=12),
    ]
    for device in noisy:
        device.faults.garbage = True
    target = tmp_path / "found.yaml"
    started = time.monotonic()
    with running([*_rack(net), *noisy]):
        assert main(_argv(net, "-o", str(target))) == 0
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    text = target.read_text(encoding="utf-8")
    config = parse_config(str(target), text, PluginRegistry.discover(), environ={})
    seen = {d.host: (d.plugin, d.options.get("family"), d.options.get("model"), len(d.channels))
            for d in config.devices}
    assert seen == {
        f"{b}.2": ("shure", "ulxd", None, 4),
        f"{b}.3": ("shure", "qlxd", "QLXD4", 1),
        f"{b}.4": ("shure", "axtd", None, 2),
        f"{b}.5": ("shure", "uhfr", "UR4D", 2),
        f"{b}.6": ("sennheiser-sscv2", "ewdx", None, 2),
        f"{b}.7": ("sennheiser-ssc", None, None, 4),
        f"{b}.8": ("sennheiser-mcp", None, None, 1),
    }
    # Ports other than the protocol's default are carried into the fragment; slots are numbered in order.
    by_host = {d.host: d for d in config.devices}
    assert by_host[f"{b}.2"].port == net["shure"]
    assert by_host[f"{b}.8"].port is None
    slots = [c.slot for d in config.devices for c in d.channels.values()]
    assert slots == list(range(1, 17))
    assert by_host[f"{b}.2"].id == "ulxd1"  # the receiver's own DEVICE_ID names it
    # Receivers answering garbage in every protocol are not devices, and the summary says so.
    assert "5 answer(s) were not well-formed device replies and were not counted" in err
    assert f"{b}.9, {b}.10, {b}.11, {b}.12, {b}.13" in err
    assert "found 7 devices" in err
    assert f"scanned {net['cidr']}: 30 hosts" in err
    assert "# TODO: set the third-party password" in text
    assert elapsed < 20


def test_an_empty_range_says_why(net: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_argv(net, "--concurrency", "128")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "found nothing. Why:" in err
    assert "all refused: every host answered, but none listens on TCP" in err
    assert "SLP multicast: not listened" in err


def test_silent_port_is_reported_as_such(net: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    b = net["base"]
    mute = ShureUlxdSimulator(host=f"{b}.2", port=net["shure"], seed=1)
    mute.faults.stall = True  # connects, never answers: what an SLX-D with third-party control off does
    with running([mute]):
        assert main(_argv(net, cidrs=(f"{b}.2/32", f"{b}.2"))) == 1
    err = capsys.readouterr().err
    assert "1 host(s) accept TCP" in err and "Allow Third-Party Controls" in err
    assert ": 1 host in" in err  # the two ranges overlap: the host is probed once


def test_large_range_needs_force_and_output_is_not_overwritten(
    net: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["discover", "--cidr", "127.64.0.0/16"]) == 2
    assert "ranges larger than /20 need --force" in capsys.readouterr().err
    assert main(["discover", "--cidr", "::1/128"]) == 2
    assert "IPv4 only" in capsys.readouterr().err
    existing = tmp_path / "found.yaml"
    existing.write_text("keep\n", encoding="utf-8")
    assert main(_argv(net, "-o", str(existing))) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert existing.read_text(encoding="utf-8") == "keep\n"


def test_mcp_port_taken_is_reported(net: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind((net["mcp_bind"], 53212))  # without SO_REUSEADDR, as Wireless Systems Manager might
        assert main(_argv(net)) == 1
    err = capsys.readouterr().err
    assert "is taken by another program" in err and "--mcp-bind" in err


def test_slp_announcement_outside_the_range_is_probed(net: dict[str, Any]) -> None:
    b = net["base"]
    outside = f"{b}.100"  # not in the scanned /30
    receiver = ShureUlxdSimulator(host=outside, port=net["shure"], model="ULXD4D", seed=3)
    slp_port = _free_port(f"{b}.250")
    announcement = b"\x02\x03\x00\x00\x30\x00\x00\x00\x00\x00\x01\x00\x02en(cd:0x12ab),ULXD4D,shure"
    assert parse_slp(outside, announcement) is not None
    assert parse_slp(outside, b"\x01not slp v2 at all.....") is None

    async def announce() -> None:
        await anyio.sleep(0.2)
        async with await anyio.create_udp_socket(local_host=outside) as sock:
            await sock.sendto(announcement, f"{b}.250", slp_port)

    options = ScanOptions(networks=(ipaddress.ip_network(f"{b}.0/30"),), reply_wait=0.3,
                          ports=Ports(shure=net["shure"], sscv2=net["sscv2"], ssc=net["ssc"]),
                          mcp_bind=net["mcp_bind"],
                          slp=SlpListen(duration=0.8, group=None, bind=f"{b}.250", port=slp_port))

    async def main_() -> Any:
        async with anyio.create_task_group() as tg:
            await tg.start(receiver.serve)
            tg.start_soon(announce)
            result = await scan(options)
            tg.cancel_scope.cancel()
        return result

    result = anyio.run(main_)
    assert result.slp is not None and outside in result.slp.heard
    assert result.slp_extra_hosts == [outside]
    assert [(f.host, f.model, f.channels) for f in result.devices] == [(outside, "ULXD4D", 2)]


def test_fragment_is_valid_yaml_with_comments(net: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    b = net["base"]
    with running([ShureQlxdSimulator(host=f"{b}.3", port=net["shure"], seed=2)]):
        assert main(_argv(net, "--first-slot", "0")) == 0
    out = capsys.readouterr().out
    doc = yaml.safe_load(out)
    assert doc["devices"][0]["options"] == {"family": "qlxd", "model": "QLXD4"}
    assert "channels" not in doc["devices"][0]
    assert "# TODO: does not answer GET MODEL" in out
