"""Simulated Sennheiser ew G4 / G3 / 2000 receiver speaking the Media Control Protocol over UDP 53212.

Written from ``shared/reference/sennheiser-protocols.md`` §3 (TI 1254) without the plugin's codec. Like the
device it answers only datagrams whose source port is 53212, so it must run on its own address
(``127.0.0.x``) at port 53212, next to the exporter's socket on another address. It keeps one ``Push``
subscription per client: the cyclic block every ``cycle`` ms until ``timeout`` runs out, configuration
attributes on change (mode 1), an extra block when warnings (mode 2) or pilot/battery (mode 4) change.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import anyio
from anyio.abc import SocketAttribute, TaskStatus, UDPSocket
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from micboard_exporter.simulators.base import SimulatedDevice
from micboard_exporter.simulators.physics import ChannelPhysics

MCP_PORT: Final = 53212
_CONFIG_KEYS: Final = ("Name", "Frequency", "Squelch", "AfOut", "Equalizer", "Mute")


@dataclass
class _Pusher:
    timeout: int
    cycle_ms: int
    mode: int
    expires: float
    next_block: float


def _rf_percent(dbm: float) -> int:
    # 0 % = 0 dBµV, 100 % = 40 dBµV; dBµV = dBm + 107 (50 Ω).
    return max(0, round((dbm + 107.0) / 0.4))


def _af_percent(dbfs: float) -> int:
    # 0 % = −50 dB, 100 % = peak (0 dBFS).
    return max(0, round((dbfs + 50.0) / 0.5))


class SennheiserMcpSimulator(SimulatedDevice):
    """One EM receiver channel (the first of :attr:`channels`).

    Options: ``firmware`` (default ``1.20.1``), ``source_port_rule`` (default True: ignore clients not
    sending from port 53212).
    """

    kind: ClassVar[str] = "sennheiser-mcp"
    plugin: ClassVar[str] = "sennheiser-mcp"
    default_model: ClassVar[str] = "EM 300-500 G4"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"EM 300-500 G4": 1, "EM 300 G3": 1, "EM 2000": 1}

    def __init__(self, **kwargs: Any) -> None:
        if not kwargs.get("port"):
            kwargs["port"] = MCP_PORT  # the device's port is fixed; 0 ("any") would not be an MCP device
        super().__init__(**kwargs)
        self.firmware = str(self.options.get("firmware", "1.20.1"))
        self.squelch = 7
        self.af_out = 0
        self.equalizer = 0
        self.bank, self.bank_channel = 1, 1
        self.config_counter = 234
        self.pushers: dict[tuple[str, int], _Pusher] = {}
        self.received: deque[str] = deque(maxlen=self.record_limit)
        """The most recent instruction lines received from accepted clients, in order."""
        self._udp: UDPSocket | None = None
        self._outbox_send: MemoryObjectSendStream[tuple[tuple[str, int], list[str]]] | None = None
        self._sent_config: dict[str, str] = {}
        self._sent_warn: tuple[str, ...] = ()
        self._sent_pilot_bat: tuple[int, str] = (0, "?")

    @property
    def channel(self) -> ChannelPhysics:
        """The receiver's one channel."""
        return self.channels[0]

    # ---------------------------------------------------------------- rendering

    def _config_lines(self) -> dict[str, str]:
        ch = self.channel
        return {
            "Name": f"Name {ch.name}",
            "Frequency": f"Frequency {round(ch.frequency_hz / 1000)} {self.bank} {self.bank_channel}",
            "Squelch": f"Squelch {self.squelch}",
            "AfOut": f"AfOut {self.af_out}",
            "Equalizer": f"Equalizer {self.equalizer}",
            "Mute": "Mute 0",
        }

    def _bat(self) -> str:
        ch = self.channel
        if not ch.link_up:
            return "?"
        # A three-step gauge: 100, 70, 30, 0 %.
        for threshold, shown in ((0.85, "100"), (0.5, "70"), (0.15, "30")):
            if ch.battery_ratio >= threshold:
                return shown
        return "0"

    def _warnings(self) -> tuple[str, ...]:
        ch = self.channel
        tokens = []
        if ch.clip_pending:
            tokens.append("AF_Peak")
        if self._bat() == "0":
            tokens.append("Low_Battery")
        if ch.link_up and ch.muted:
            tokens.append("TX_Mute")
        if ch.link_up and max(ch.received_dbm()) < -90:
            tokens.append("Low_RF_Signal")
        if not ch.link_up:
            tokens.append("RF_Mute")
        return tuple(tokens)

    def _block(self) -> list[str]:
        ch = self.channel
        levels = ch.received_dbm() + [ch.received_dbm()[-1]]
        active = ch.active_antenna()
        pilot = 1 if ch.link_up else 0
        mute_bits = (2 if ch.link_up and ch.muted else 0) | (4 if not ch.link_up else 0)
        mute_bits |= 1 if mute_bits else 0
        lines = []
        for n in (1, 2):
            pct = _rf_percent(levels[n - 1])
            lines.append(f"RF{n} {max(0, pct - 3)} {pct} {1 if active == n - 1 else 0}")
        warnings = self._warnings()
        lines += [
            f"States {mute_bits} {pilot}",
            f"RF {_rf_percent(max(ch.received_dbm()))} {(active or 0) + 1} {pilot}",
            f"AF {_af_percent(ch.audio_rms_dbfs) if ch.link_up else 0} "
            f"{_af_percent(ch.audio_peak_dbfs) if ch.link_up else 0} {mute_bits}",
            f"Bat {self._bat()}",
            "Msg " + (" ".join(warnings) if warnings else "OK"),
            f"Config {self.config_counter}",
        ]
        ch.clip_pending = False  # a clip is reported in one block, then it is over
        return lines

    # ---------------------------------------------------------------- serving

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind ``host:port`` (53212 by default) with SO_REUSEADDR and serve until cancelled."""
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.setblocking(False)
        try:
            raw.bind((self.host, self.port))
        except OSError:
            raw.close()
            raise
        outbox_send, outbox_receive = anyio.create_memory_object_stream[tuple[tuple[str, int], list[str]]](100)
        async with outbox_send, outbox_receive, await UDPSocket.from_socket(raw) as udp, \
                anyio.create_task_group() as tg:
            self._udp = udp
            self._outbox_send = outbox_send
            self.port = udp.extra(SocketAttribute.local_port)  # noqa: S610 - anyio typed attribute
            self._sent_config = self._config_lines()
            tg.start_soon(self._cycle_loop)
            tg.start_soon(self._sender, outbox_receive)
            task_status.started()
            async for data, client in udp:
                await self._on_datagram(data, client)

    async def _send(self, client: tuple[str, int], lines: list[str]) -> None:
        if self._udp is None or not lines:
            return
        data = ("\r".join(lines) + "\r").encode("latin-1")
        faults = self.faults
        if faults.garbage:
            data = bytes(self.rng.randrange(256) for _ in range(len(data)))
        if faults.close_mid_frame:
            data = data[: len(data) // 2]
        if faults.drip_interval > 0:
            await anyio.sleep(faults.drip_interval)
        if faults.split_bytes:
            # UDP has no byte stream: the closest thing is one line per datagram.
            for line in lines:
                await self._udp.sendto((line + "\r").encode("latin-1"), *client)
            return
        await self._udp.sendto(data, *client)

    async def _on_datagram(self, data: bytes, client: tuple[str, int]) -> None:
        if self.faults.refuse or self.faults.stall:
            return
        if self.options.get("source_port_rule", True) and client[1] != MCP_PORT:
            return  # the G4 answers only to source port 53212
        if len(data) > 1500:
            return  # longer input is silently ignored
        replies: list[str] = []
        for raw in data.decode("latin-1").replace("\n", "\r").split("\r"):
            line = raw.strip()
            if line:
                self.received.append(line)
                replies += self._instruction(line, client)
        await self._send(client, replies)

    def _instruction(self, line: str, client: tuple[str, int]) -> list[str]:
        keyword, _, rest = line.partition(" ")
        params = rest.split()
        if keyword == "Push":
            return self._push(line, params, client)
        config = self._config_lines()
        if keyword in config:
            if not params:
                return [config[keyword]]
            if keyword == "Name":
                self.channel.name = rest.strip()[:8]
                return self._configured(line)
            return [f"1010: Invalid parameter [ {line} ]"] if not all(p.lstrip("#-").isdigit() for p in params) \
                else self._configured(line)
        if keyword == "FirmwareRevision":
            return [f"FirmwareRevision {self.firmware}"]
        if keyword == "RfConfig":
            return ["RfConfig 470200 516000 25"]
        return [f"1000: Invalid command [ {line} ]"]

    def _configured(self, line: str) -> list[str]:
        self.config_counter = (self.config_counter + 1) % 1000
        return [line]

    def _push(self, line: str, params: list[str], client: tuple[str, int]) -> list[str]:
        if len(params) != 3:
            return [f"1040: Invalid numbers of parameter [ {line} ]"]
        if not all(p.isdigit() for p in params):
            return [f"1010: Invalid parameter [ {line} ]"]
        timeout, cycle, mode = (int(p) for p in params)
        if timeout > 300 or cycle > 60000 or cycle % 100 or mode > 7:
            return [f"1020: Value out of range [ {line} ]"]
        replies: list[str] = []
        if mode & 1:
            replies += list(self._config_lines().values())
        if timeout == 0:
            self.pushers.pop(client, None)
            if cycle:
                replies += self._block()
        else:
            now = time.monotonic()
            self.pushers[client] = _Pusher(timeout, cycle, mode, now + timeout, now + cycle / 1000 if cycle else 0)
        return [*replies, line]

    async def _cycle_loop(self) -> None:
        while True:
            await anyio.sleep(0.02)
            now = time.monotonic()
            for client, pusher in list(self.pushers.items()):
                if now >= pusher.expires:
                    del self.pushers[client]  # the subscription ran out: the device falls silent
                elif pusher.cycle_ms and now >= pusher.next_block:
                    pusher.next_block = now + pusher.cycle_ms / 1000
                    if not (self.faults.refuse or self.faults.stall):
                        await self._send(client, self._block())

    def changed(self) -> None:
        """Push what changed to subscribers whose mode asks for it (configuration, warnings, pilot/battery)."""
        if self._udp is None:
            return
        config = self._config_lines()
        config_news = [v for k, v in config.items() if self._sent_config.get(k) != v]
        if config_news:
            self.config_counter = (self.config_counter + 1) % 1000
        warnings = self._warnings()
        pilot_bat = (1 if self.channel.link_up else 0, self._bat())
        warn_news, pilot_news = warnings != self._sent_warn, pilot_bat != self._sent_pilot_bat
        self._sent_config, self._sent_warn, self._sent_pilot_bat = config, warnings, pilot_bat
        for client, pusher in self.pushers.items():
            lines = list(config_news) if pusher.mode & 1 else []
            if (pusher.mode & 2 and warn_news) or (pusher.mode & 4 and pilot_news):
                lines += self._block()
            if lines and not (self.faults.refuse or self.faults.stall):
                self._spawn_send(client, lines)

    def _spawn_send(self, client: tuple[str, int], lines: list[str]) -> None:
        # changed() is synchronous: hand the datagram to the sender task; a full queue drops it, as UDP would.
        if self._outbox_send is None:
            return
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._outbox_send.send_nowait((client, lines))

    async def _sender(self, outbox: MemoryObjectReceiveStream[tuple[tuple[str, int], list[str]]]) -> None:
        async for client, lines in outbox:
            await self._send(client, lines)
