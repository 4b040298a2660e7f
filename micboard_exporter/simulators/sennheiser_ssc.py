"""Simulated EW-DX receiver in third-party mode "Legacy": SSC v1, JSON over UDP (port 45 on the device).

Written from ``shared/reference/sennheiser-protocols.md`` §2 without the plugin's codec. Gets fill ``null``
leaves; unknown addresses answer 404, transmitter addresses answer 424 while no transmitter is on; a
message that is not JSON answers 400; an answer that would not fit a datagram answers 450. Subscriptions
(``/osc/state/subscribe``) are acknowledged by echo, followed by the current values, then a notification
on every change, until the lifetime (default 10 s) runs out: then error 310 for each address.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import anyio
from anyio.abc import SocketAttribute, TaskStatus, UDPSocket
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from micboard_exporter.simulators import ewdx
from micboard_exporter.simulators.base import SimulatedDevice
from micboard_exporter.simulators.physics import ChannelPhysics

DEFAULT_LIFETIME_S: Final = 10
_DESC: Final = {310: "subscription terminates", 400: "message not understood", 404: "address not found",
                424: "failed dependency", 450: "answer too long"}
_NOT_FOUND: Final = object()
_DEPENDENCY: Final = object()

Client = tuple[str, int]
Outgoing = tuple[Client, bytes]


@dataclass
class _Subscription:
    client: Client
    paths: list[str]
    expires: float
    sent: dict[str, Any] = field(default_factory=dict)


def _flatten(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        out: list[tuple[str, Any]] = []
        for key, value in node.items():
            out += _flatten(value, f"{prefix}/{key}")
        return out
    return [(prefix, node)]


def _nest(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path, value in pairs:
        parts = path.strip("/").split("/")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


class SennheiserSscSimulator(SimulatedDevice):
    """An EW-DX EM 2 / EM 4 answering SSC v1.

    Options: ``terminator`` appended to every datagram (``""`` by default; ``"\\r\\n"`` or ``"\\0"`` as older
    devices do), ``max_datagram`` (1400), ``meters_subscribe_only`` (answer 404 to plain gets of ``/m/…``,
    as one hardware probe reported), ``firmware``.
    """

    kind: ClassVar[str] = "sennheiser-ssc"
    plugin: ClassVar[str] = "sennheiser-ssc"
    default_model: ClassVar[str] = "EWDX EM 4 DANTE"
    channel_count_by_model: ClassVar[Mapping[str, int]] = {"EWDX EM 2": 2, "EWDX EM 2 DANTE": 2,
                                                            "EWDX EM 4 DANTE": 4}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("port", 0)
        super().__init__(**kwargs)
        self.firmware = str(self.options.get("firmware", "3.0.3"))
        self.terminator = str(self.options.get("terminator", "")).encode("latin-1")
        self.max_datagram = int(self.options.get("max_datagram", 1400))
        self.subscriptions: list[_Subscription] = []
        self.requests: deque[Any] = deque(maxlen=self.record_limit)
        """The most recent decoded requests, in order."""
        self._outbox: MemoryObjectSendStream[Outgoing] | None = None
        self._clips_reported: set[int] = set()

    # ---------------------------------------------------------------- addresses

    def _rx(self, part: str, prefix: str) -> tuple[int, ChannelPhysics] | None:
        if not part.startswith(prefix) or not part[len(prefix):].isdigit():
            return None
        n = int(part[len(prefix):])
        return (n, self.channels[n - 1]) if 1 <= n <= len(self.channels) else None

    def value(self, path: str) -> Any:
        """The value at ``path``, or one of the error markers."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["device", "identity"] and len(parts) == 3:
            return {"product": self.model, "serial": "1023456789", "version": self.firmware,
                    "vendor": "Sennheiser electronic SE & Co. KG"}.get(parts[2], _NOT_FOUND)
        if parts == ["device", "name"]:
            return "EWDXEM4"
        if len(parts) == 2 and (rx := self._rx(parts[0], "rx")):
            return self._receiver(rx[0], rx[1], parts[1])
        if len(parts) == 3 and parts[0] == "m" and (rx := self._rx(parts[1], "rx")):
            if self.options.get("meters_subscribe_only") and not self._in_subscription:
                return _NOT_FOUND
            return self._meter(rx[1], parts[2])
        if len(parts) >= 3 and parts[0] == "mates" and (tx := self._rx(parts[1], "tx")):
            return self._transmitter(tx[0], tx[1], parts[2:])
        return _NOT_FOUND

    _in_subscription = False

    def _receiver(self, n: int, ch: ChannelPhysics, key: str) -> Any:
        if key == "name":
            return ch.name.upper()[:8]
        if key == "frequency":
            return round(ch.frequency_hz / 1000)
        if key == "mute":
            return False
        if key == "gain":
            return 36
        if key == "warnings":
            if ch.clip_pending:
                self._clips_reported.add(n)
            return ewdx.warnings(ch)
        return _NOT_FOUND

    def _meter(self, ch: ChannelPhysics, key: str) -> Any:
        if key == "rssi":
            return round(max(-107.0, max(ch.received_dbm())), 1)
        if key == "rsqi":
            return round(ch.link_quality_ratio() * 100)
        if key == "divi":
            active = ch.active_antenna()
            return 0 if active is None else active + 1
        if key == "af":
            return round(max(-138.5, ch.audio_rms_dbfs if ch.link_up else -138.5), 1)
        return _NOT_FOUND

    def _transmitter(self, n: int, ch: ChannelPhysics, rest: list[str]) -> Any:
        known = {("battery", "gauge"), ("battery", "lifetime"), ("battery", "type"), ("warnings",), ("type",),
                 ("mute",), ("name",)}
        if tuple(rest) not in known:
            return _NOT_FOUND
        if not ch.link_up:
            return _DEPENDENCY
        return {
            ("battery", "gauge"): round(ch.battery_ratio * 100),
            ("battery", "lifetime"): round(ch.runtime_s / 60),
            ("battery", "type"): "Battery" if ch.battery_type == "LION" else "Primary Cell",
            ("warnings",): ["LowBattery"] if ch.battery_ratio < 0.15 else [],
            ("type",): "SKM" if n % 2 else "SK",
            ("mute",): ch.muted,
            ("name",): ch.name.upper()[:8],
        }[tuple(rest)]

    # ---------------------------------------------------------------- messages

    def _render(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        values, errors = [], []
        for path, _ in pairs:
            v = self.value(path)
            if v is _NOT_FOUND:
                errors.append((path, [404, {"desc": _DESC[404]}]))
            elif v is _DEPENDENCY:
                errors.append((path, [424, {"desc": _DESC[424]}]))
            else:
                values.append((path, v))
        reply = _nest(values)
        if errors:
            reply.setdefault("osc", {})["error"] = [_nest(errors)]
        return reply

    def _answer(self, request: Any, client: Client) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"osc": {"error": [400, {"desc": _DESC[400]}]}}
        osc = request.get("osc")
        if isinstance(osc, dict) and isinstance(osc.get("state"), dict) and "subscribe" in osc["state"]:
            return self._subscribe(request, osc["state"]["subscribe"], client)
        pairs = [(p, v) for p, v in _flatten({k: v for k, v in request.items() if k != "osc"})]
        if any(v is not None for _, v in pairs):
            # Sets are not simulated: the device's reply to a read-only address is 405-like; keep it simple.
            return {"osc": {"error": [{p.strip("/"): [403, {"desc": "forbidden"}]} for p, _ in pairs]}}
        return self._render(pairs)

    def _subscribe(self, request: dict[str, Any], elements: Any, client: Client) -> dict[str, Any]:
        if not isinstance(elements, list):
            return {"osc": {"error": [400, {"desc": _DESC[400]}]}}
        for element in elements:
            if not isinstance(element, dict):
                return {"osc": {"error": [400, {"desc": _DESC[400]}]}}
            params = element.get("#", {})
            paths = [p for p, _ in _flatten({k: v for k, v in element.items() if k != "#"})]
            self.subscriptions = [s for s in self.subscriptions if not (s.client == client and s.paths == paths)]
            if params.get("cancel"):
                continue
            lifetime = int(params.get("lifetime", DEFAULT_LIFETIME_S))
            sub = _Subscription(client=client, paths=paths, expires=time.monotonic() + lifetime)
            self.subscriptions.append(sub)
            # The acknowledgement goes out first, then the current values.
            self._notify(sub, initial=True)
        return request

    def _encode(self, message: dict[str, Any]) -> bytes:
        data = json.dumps(message, separators=(",", ":")).encode("latin-1")
        if len(data) > self.max_datagram:
            data = json.dumps({"osc": {"error": [450, {"desc": _DESC[450]}]}}).encode("latin-1")
        return data + self.terminator

    def _queue(self, client: Client, message: dict[str, Any]) -> None:
        if self._outbox is None:
            return
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._outbox.send_nowait((client, self._encode(message)))

    def _notify(self, sub: _Subscription, *, initial: bool = False) -> None:
        self._in_subscription = True
        try:
            current = {p: self.value(p) for p in sub.paths}
        finally:
            self._in_subscription = False
        delta = [(p, v) for p, v in current.items()
                 if v is not _NOT_FOUND and v is not _DEPENDENCY and (initial or sub.sent.get(p, _NOT_FOUND) != v)]
        sub.sent = current
        if delta:
            self._pending_notifications.append((sub.client, _nest(delta)))

    _pending_notifications: list[tuple[Client, dict[str, Any]]]

    def changed(self) -> None:
        """Notify every live subscription of the values that changed."""
        self._pending_notifications = []
        for sub in self.subscriptions:
            self._notify(sub)
        for client, message in self._pending_notifications:
            self._queue(client, message)
        for n in self._clips_reported:
            self.channels[n - 1].clip_pending = False
        self._clips_reported.clear()

    # ---------------------------------------------------------------- serving

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind UDP ``host:port`` and serve until cancelled."""
        outbox_send, outbox_receive = anyio.create_memory_object_stream[Outgoing](1000)
        async with outbox_send, outbox_receive, await anyio.create_udp_socket(
            local_host=self.host, local_port=self.port
        ) as udp, anyio.create_task_group() as tg:
            self.port = udp.extra(SocketAttribute.local_port)  # noqa: S610 - anyio typed attribute
            self._outbox = outbox_send
            tg.start_soon(self._sender, udp, outbox_receive)
            tg.start_soon(self._expiry_loop)
            task_status.started()
            async for data, client in udp:
                self._on_datagram(data, client)

    def _on_datagram(self, data: bytes, client: Client) -> None:
        if self.faults.refuse or self.faults.stall:
            return
        try:
            request = json.loads(data.decode("latin-1").rstrip("\r\n\0 "))
        except ValueError:
            request = None
        self.requests.append(request)
        self._pending_notifications = []
        reply = self._answer(request, client)
        self._queue(client, reply)
        for target, message in self._pending_notifications:
            self._queue(target, message)
        self._pending_notifications = []

    async def _sender(self, udp: UDPSocket, outbox: MemoryObjectReceiveStream[Outgoing]) -> None:
        async for client, data in outbox:
            if self.faults.garbage:
                data = bytes(self.rng.randrange(256) for _ in range(len(data)))
            if self.faults.close_mid_frame:
                data = data[: len(data) // 2]
            if self.faults.drip_interval > 0:
                await anyio.sleep(self.faults.drip_interval)
            with contextlib.suppress(OSError):
                await udp.sendto(data, *client)

    async def _expiry_loop(self) -> None:
        while True:
            await anyio.sleep(0.05)
            now = time.monotonic()
            for sub in [s for s in self.subscriptions if s.expires <= now]:
                self.subscriptions.remove(sub)
                terminated = _nest([(p, [310, {"desc": _DESC[310]}]) for p in sub.paths])
                self._queue(sub.client, {"osc": {"error": [terminated]}})
