"""Shure probes: command strings on TCP 2202, UHF-R on UDP 2202, and SLP multicast announcements.

Facts from ``shared/reference/shure-protocols.md``: §1.1 (ports, UHF-R on UDP), §1.2 (framing, ``REP ERR``,
silence for a property the model lacks), §3.5 (discovery: SLP multicast 239.255.254.253:8427 with
``cd:<DCID>`` in the payload, as Micboard listens; Wirelessboard's active TCP probe that accepts only framed
replies). A reply counts only when it is a well-formed frame: frames are read with the plugin's own
:class:`~micboard_exporter.plugins.shure.codec.FrameReader` and ``parse_frame``, the same client-side code
that will poll the device, so discovery never suggests a device the plugin could not read.
"""

from __future__ import annotations

import errno
import functools
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc

from micboard_exporter.discovery.outcome import Attempt, Found, Reason, reason_for
from micboard_exporter.plugins.shure.codec import (
    REPLY_VERBS,
    SOLE_MODEL,
    Family,
    Frame,
    FrameReader,
    FramingError,
    model_info,
    parse_frame,
    split_datagram,
)

SHURE_PORT: Final = 2202
TCP: Final = "shure-tcp"
UDP: Final = "shure-udp"
# Every TCP family answers one of these three; a GET for a property the model lacks gets no reply (RFD),
# so asking for all three costs nothing. CRLF as Wirelessboard's probe sends it: PSM1000 needs it (§1.2).
_IDENTITY_PROBE: Final = b"< GET DEVICE_ID >\r\n< GET MODEL >\r\n< GET DEVICE_NAME >\r\n"
#: After the first identity reply, how long to wait for the others (a LAN round trip is milliseconds).
_GRACE_S: Final = 0.3
_READ_SIZE: Final = 4096
_MAX_PROBE_CHANNELS: Final = 4
_MODEL_BY_COUNT: Final = {1: "QLXD4", 2: "ULXD4D", 4: "ULXD4Q"}


class _Conversation:
    """Frames from one TCP stream with a deadline per wait; raises :class:`FramingError` on garbage."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.reader = FrameReader(max_frame_bytes=_READ_SIZE)
        self.pending: list[Frame] = []
        self.closed = False

    async def next_frame(self, deadline: float) -> Frame | None:
        while not self.pending:
            if self.closed:
                return None
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return None
            with anyio.move_on_after(remaining):
                try:
                    data = await self.stream.receive(_READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    self.closed = True
                    return None
                self.pending.extend(parse_frame(text) for text in self.reader.feed(data))
                continue
            return None
        return self.pending.pop(0)


async def probe_tcp(host: str, port: int = SHURE_PORT, reply_wait: float = 0.75) -> Attempt:
    """Ask ``host`` for DEVICE_ID, MODEL and DEVICE_NAME; a framed identity reply makes it a device."""
    try:
        with anyio.fail_after(reply_wait):
            stream = await anyio.connect_tcp(host, port)
    except TimeoutError:
        return Attempt(host, TCP, Reason.TIMEOUT, f"no TCP connection to port {port} within {reply_wait:g}s")
    except OSError as exc:
        reason, detail = reason_for(exc)
        return Attempt(host, TCP, reason, detail)
    async with stream:
        try:
            return await _identify(host, port, reply_wait, _Conversation(stream))
        except FramingError as exc:
            return Attempt(host, TCP, Reason.GARBAGE, f"not Shure command strings: {exc}")
        except OSError as exc:
            reason, detail = reason_for(exc)
            return Attempt(host, TCP, reason, detail)


async def _identify(host: str, port: int, reply_wait: float, talk: _Conversation) -> Attempt:
    await talk.stream.send(_IDENTITY_PROBE)
    deadline = anyio.current_time() + reply_wait
    identity: dict[str, tuple[str, str]] = {}  # property -> (verb, value)
    errors = 0
    while (frame := await talk.next_frame(deadline)) is not None:
        if frame.is_error:
            errors += 1
        elif frame.verb in REPLY_VERBS and frame.channel is None and frame.prop in ("DEVICE_ID", "MODEL",
                                                                                     "DEVICE_NAME"):
            if not identity:
                deadline = min(deadline, anyio.current_time() + _GRACE_S)
            identity[frame.prop] = (frame.verb, frame.text)
        if "MODEL" in identity or "DEVICE_NAME" in identity:
            break  # a receiver that reports its model, or a PSM1000: nothing more to wait for
    if not identity:
        if errors:
            return Attempt(host, TCP, Reason.REJECTED, f"answered REP ERR to every identity GET on TCP {port}")
        return Attempt(host, TCP, Reason.SILENT, f"TCP {port} open but no answer within {reply_wait:g}s")
    return Attempt(host, TCP, Reason.FOUND, found=await _describe(host, port, reply_wait, identity, talk))


async def _describe(host: str, port: int, reply_wait: float, identity: dict[str, tuple[str, str]],
                    talk: _Conversation) -> Found:
    name = identity.get("DEVICE_ID", ("", ""))[1] or None
    evidence = ", ".join(f"{verb} {prop} {{{value}}}" for prop, (verb, value) in identity.items())
    make = functools.partial(Found, host=host, port=port, protocol=TCP, plugin="shure", evidence=evidence)
    if "MODEL" in identity:
        model = identity["MODEL"][1]
        info = model_info(model)
        if info is None:
            return make(name=name, model=model, notes=(f"model {model!r} is not one the shure plugin knows; "
                                                       "set options.family by hand",))
        return make(name=name, model=model, family=info.family.value, channels=info.channels,
                     options={"family": info.family.value})
    if "DEVICE_NAME" in identity:  # only the PSM1000 names itself with DEVICE_NAME (§2.5)
        model = SOLE_MODEL[Family.P10T]
        return make(name=identity["DEVICE_NAME"][1] or None, model=model, family=Family.P10T.value, channels=2,
                     options={"family": Family.P10T.value})
    # DEVICE_ID without MODEL: QLX-D or ULX-D on older firmware (§6). They share one command set; the
    # number of channels tells the models apart, and a channel beyond the last answers REP ERR (D-ULXD).
    count = await _count_channels(talk, reply_wait)
    guessed = _MODEL_BY_COUNT.get(count)
    family = Family.QLXD if count == 1 else Family.ULXD
    notes = ["does not answer GET MODEL (QLX-D, or ULX-D on older firmware): the family is set explicitly"]
    if count == 1:
        notes.append("one channel: QLXD4, or a ULXD4 on older firmware (same commands, either works)")
    options: dict[str, str] = {"family": family.value}
    if guessed is not None:
        options["model"] = guessed
    return make(name=name, model=guessed, family=family.value, channels=count, options=options,
                 notes=tuple(notes))


async def _count_channels(talk: _Conversation, reply_wait: float) -> int:
    count = 0
    for channel in range(1, _MAX_PROBE_CHANNELS + 1):
        await talk.stream.send(f"< GET {channel} CHAN_NAME >\r\n".encode("ascii"))
        deadline = anyio.current_time() + reply_wait
        answered = False
        while (frame := await talk.next_frame(deadline)) is not None:
            if frame.is_error:
                return count
            if frame.verb in REPLY_VERBS and frame.channel == channel and frame.prop == "CHAN_NAME":
                answered = True
                break
        if not answered:
            return count
        count = channel
    return count


# --------------------------------------------------------------------------------------------- UHF-R


async def probe_udp(host: str, port: int = SHURE_PORT, reply_wait: float = 0.75) -> Attempt:
    """UHF-R: ``* GET 1 CHAN_NAME *`` must come back as ``* REPORT 1 CHAN_NAME ... *``; channel 2 tells UR4D."""
    try:
        async with await anyio.create_connected_udp_socket(host, port) as sock:
            first = await _udp_ask(sock, 1, reply_wait)
            if isinstance(first, Attempt):
                return Attempt(host, UDP, first.reason, first.detail)
            second = await _udp_ask(sock, 2, reply_wait)
    except OSError as exc:
        reason, detail = reason_for(exc)
        return Attempt(host, UDP, reason, detail)
    channels = 2 if second is True else 1
    model = "UR4D" if channels == 2 else "UR4S"
    notes = () if channels == 2 else ("channel 2 did not answer: UR4S (one channel)",)
    found = Found(host=host, port=port, protocol=UDP, plugin="shure", model=model, family=Family.UHFR.value,
                  channels=channels, evidence=f"REPORT 1 CHAN_NAME on UDP {port}",
                  options={"family": Family.UHFR.value, "model": model}, notes=notes)
    return Attempt(host, UDP, Reason.FOUND, found=found)


async def _udp_ask(sock: anyio.abc.ConnectedUDPSocket, channel: int, reply_wait: float) -> Attempt | bool:
    """True: the channel answered; False: REP ERR or a frame about something else; Attempt: why not."""
    await sock.send(f"* GET {channel} CHAN_NAME *".encode("ascii"))
    with anyio.move_on_after(reply_wait):
        while True:
            data = await sock.receive()
            try:
                frames = [parse_frame(text) for text in split_datagram(data)]
            except FramingError as exc:
                return Attempt("", UDP, Reason.GARBAGE, f"not UHF-R command strings: {exc}")
            for frame in frames:
                if frame.is_error:
                    return Attempt("", UDP, Reason.REJECTED, "answered REPORT ERR") if channel == 1 else False
                if frame.verb in REPLY_VERBS and frame.channel == channel and frame.prop == "CHAN_NAME":
                    return True
    return Attempt("", UDP, Reason.TIMEOUT, f"no UDP answer within {reply_wait:g}s")


# --------------------------------------------------------------------------------------------- SLP

SLP_GROUP: Final = "239.255.254.253"
SLP_PORT: Final = 8427
# Micboard decides the family by these names appearing in the announcement (MB py/discover.py rx_types).
_SLP_FAMILIES: Final = (("UHFR", Family.UHFR), ("QLXD", Family.QLXD), ("ULXD", Family.ULXD),
                        ("AXTD", Family.AXTD), ("SLXD", Family.SLXD))


@dataclass(frozen=True)
class SlpAnnouncement:
    """A Shure device heard on SLP: its address, the family named in the payload, its DCID."""

    host: str
    family: Family | None
    dcid: str | None


def parse_slp(host: str, data: bytes) -> SlpAnnouncement | None:
    """An SLPv2 message (RFC 2608 §8: version byte 2) that names a Shure family or carries a ``cd:`` DCID."""
    if len(data) < 16 or data[0] != 2:
        return None
    text = data.decode("latin-1")
    family = next((fam for token, fam in _SLP_FAMILIES if token in text), None)
    dcid = None
    for attribute in text.split(","):
        attribute = attribute.strip("()\x00 ")
        if "cd:" in attribute:
            dcid = attribute.split("cd:")[-1].strip() or None
    if family is None and dcid is None and "shure" not in text.lower():
        return None
    return SlpAnnouncement(host, family, dcid)


@dataclass(frozen=True)
class SlpListen:
    """Where and how long to listen. ``group=None`` binds without joining a group (tests on loopback)."""

    duration: float
    group: str | None = SLP_GROUP
    bind: str = "0.0.0.0"
    port: int = SLP_PORT


@dataclass
class SlpReport:
    """What the listener saw, for the summary."""

    listen: SlpListen
    status: str = "not started"
    datagrams: int = 0
    heard: dict[str, SlpAnnouncement] = field(default_factory=dict)
    error: str | None = None


def _slp_socket(listen: SlpListen) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        # Wireless Workbench or Micboard may listen on 8427 on the same machine: share the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setblocking(False)
        sock.bind((listen.bind, listen.port))
        if listen.group is not None:
            membership = struct.pack("4s4s", socket.inet_aton(listen.group), socket.inet_aton("0.0.0.0"))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError:
        sock.close()
        raise
    return sock


async def listen_slp(listen: SlpListen, on_heard: Callable[[SlpAnnouncement], None]) -> SlpReport:
    """Listen ``listen.duration`` seconds; call ``on_heard`` once per new Shure address."""
    report = SlpReport(listen)
    try:
        raw = _slp_socket(listen)
    except OSError as exc:
        where = f"{listen.group or listen.bind}:{listen.port}"
        if exc.errno in (errno.ENODEV, errno.EADDRNOTAVAIL, errno.ENOBUFS):
            report.status = "unavailable"
            report.error = f"cannot join {where}: {exc.strerror} (no multicast route on this machine)"
        else:
            report.status = "unavailable"
            report.error = f"cannot listen on {where}: {exc.strerror or exc}"
        return report
    report.status = "listening"
    async with await anyio.abc.UDPSocket.from_socket(raw) as sock:
        with anyio.move_on_after(listen.duration):
            async for data, (host, _port) in sock:
                report.datagrams += 1
                announcement = parse_slp(host, data)
                if announcement is not None and host not in report.heard:
                    report.heard[host] = announcement
                    on_heard(announcement)
    report.status = "heard" if report.heard else ("other traffic only" if report.datagrams else "silent")
    return report
