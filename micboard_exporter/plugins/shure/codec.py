"""Shure command strings: framing, tokenising, and per-family decoding into engineering units.

Pure functions and one pure incremental :class:`FrameReader`: no I/O, no clock, no logging. Facts and
source tags come from ``shared/reference/shure-protocols.md`` (cited here as "ref §n" plus the tag of the
original source, e.g. D-ULXD = Shure's "ULX-D Command Strings" PDF).

Wire shapes (ref §1.2):

* TCP families (ULX-D, QLX-D, SLX-D, Axient Digital, PSM1000): ``< VERB [ch] PROPERTY [args] >``,
  optional CR/LF/whitespace between frames, string values in ``{...}`` padded with spaces.
* UHF-R over UDP: ``* VERB ch PROPERTY args *``.

Decoding follows the manufacturer's documents where sources disagree (ref §6): ULX-D/QLX-D RF dBm = raw
− 128 and audio dBFS = raw − 50 (D-ULXD); Axient Digital and SLX-D RF and audio = raw − 120 (D-SLXD, and
CMP/OAVC/RFD for AD, which agree). Every "not available" code becomes ``None`` (D-QLXD: 252–255 for 3-digit
fields, 65532–65535 for 5-digit fields; ``UNKN``/``UNKNOWN``/``U`` for text).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypedDict

# --------------------------------------------------------------------------------------------- families


class Family(enum.StrEnum):
    """Shure protocol families that speak command strings."""

    ULXD = "ulxd"
    QLXD = "qlxd"
    SLXD = "slxd"
    AXTD = "axtd"
    UHFR = "uhfr"
    P10T = "p10t"

    @property
    def udp(self) -> bool:
        """UHF-R is the one family on UDP with ``*`` framing (ref §1.1, MB device_config.py)."""
        return self is Family.UHFR


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A receiver model: its family and how many channels it has."""

    family: Family
    channels: int


# Longest prefix first, so "ULXD4Q" wins over "ULXD4". Counts: ref §2.1 (D-ULXD naming), §2.2 (PUBS AD4),
# §2.3 (D-SLXD, S06), §2.4 (MB DCID_MODEL), §2.5 (MB p10t = 2 channels).
_MODEL_PREFIXES: Final[tuple[tuple[str, ModelInfo], ...]] = (
    ("ULXD4Q", ModelInfo(Family.ULXD, 4)),
    ("ULXD4D", ModelInfo(Family.ULXD, 2)),
    ("ULXD4", ModelInfo(Family.ULXD, 1)),
    ("QLXD4", ModelInfo(Family.QLXD, 1)),
    ("SLXD4Q", ModelInfo(Family.SLXD, 4)),
    ("SLXD4D", ModelInfo(Family.SLXD, 2)),
    ("SLXD4", ModelInfo(Family.SLXD, 1)),
    ("AD4Q", ModelInfo(Family.AXTD, 4)),
    ("AD4D", ModelInfo(Family.AXTD, 2)),
    ("UR4D", ModelInfo(Family.UHFR, 2)),
    ("UR4S", ModelInfo(Family.UHFR, 1)),
    ("P10T", ModelInfo(Family.P10T, 2)),
)

#: The only receiver model of a family, where there is just one (used when the device does not say).
SOLE_MODEL: Final[Mapping[Family, str]] = {Family.QLXD: "QLXD4", Family.P10T: "P10T"}


def model_info(model: str | None) -> ModelInfo | None:
    """Family and channel count of a model string such as ``"ULXD4Q"``, ``"AD4Q-A"`` or ``"SLXD4D+"``."""
    if not model:
        return None
    normalised = model.strip().upper()
    for prefix, info in _MODEL_PREFIXES:
        if normalised.startswith(prefix):
            return info
    return None


# --------------------------------------------------------------------------------------------- framing


class FramingError(ValueError):
    """The byte stream is not Shure command-string framing (garbage, oversized or unterminated frame)."""


_WHITESPACE: Final = frozenset(b" \t\r\n")


class FrameReader:
    """Splits a byte stream into frames, buffering a partial frame across reads (ref §1.2).

    ``<``/``>`` framing for the TCP families; a ``>`` inside a ``{...}`` string does not end a frame. Bytes
    between frames may only be whitespace (CR/LF after PSM1000 replies, ref §1.2). A partial frame longer
    than ``max_frame_bytes`` raises :class:`FramingError` instead of growing without bound, and so does a
    complete frame over that size, however it was split across reads.
    """

    def __init__(self, *, max_frame_bytes: int = 4096) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back for the next read."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[str]:
        """Add ``data`` and return every frame it completed, as text without ``<`` and ``>``."""
        buf = self._buffer
        buf += data
        frames: list[str] = []
        pos = 0
        end = len(buf)
        while pos < end:
            byte = buf[pos]
            if byte in _WHITESPACE:
                pos += 1
                continue
            if byte != 0x3C:  # "<"
                raise FramingError(f"unexpected byte 0x{byte:02x} outside a frame at offset {pos}")
            close = _find_close(buf, pos + 1)
            if close < 0:
                break
            if close + 1 - pos > self.max_frame_bytes:
                # The same limit for a frame that arrived whole as for one still arriving: what is accepted
                # must not depend on how the network happened to split the stream.
                size = close + 1 - pos
                buf.clear()
                raise FramingError(f"frame exceeds {self.max_frame_bytes} bytes ({size} bytes)")
            frames.append(_decode_text(bytes(buf[pos + 1 : close])))
            pos = close + 1
        del buf[:pos]
        if len(buf) > self.max_frame_bytes:
            size = len(buf)
            buf.clear()
            raise FramingError(f"frame exceeds {self.max_frame_bytes} bytes ({size} bytes without a closing '>')")
        return frames


def _find_close(buf: bytearray, start: int) -> int:
    """Index of the ``>`` closing the frame that opened before ``start``, skipping ``{...}``; -1 if none yet."""
    pos = start
    while True:
        close = buf.find(b">", pos)
        if close < 0:
            return -1
        brace = buf.find(b"{", pos, close)
        if brace < 0:
            return close
        end_brace = buf.find(b"}", brace + 1)
        if end_brace < 0:
            return -1  # a string still open: wait for more bytes
        pos = end_brace + 1


def split_datagram(data: bytes) -> list[str]:
    """Frames of one UHF-R datagram: ``* ... *`` (ref §1.2, MB, WMS). A datagram holds whole frames."""
    frames: list[str] = []
    pos = 0
    end = len(data)
    while pos < end:
        byte = data[pos]
        if byte in _WHITESPACE:
            pos += 1
            continue
        if byte != 0x2A:  # "*"
            raise FramingError(f"unexpected byte 0x{byte:02x} outside a frame at offset {pos}")
        close = data.find(b"*", pos + 1)
        if close < 0:
            raise FramingError(f"datagram ends inside a frame ({end - pos} bytes without a closing '*')")
        frames.append(_decode_text(data[pos + 1 : close]))
        pos = close + 1
    return frames


def _decode_text(raw: bytes) -> str:
    # All traffic is printable ASCII (ref §1.1, D-ULXD, D-QLXD, D-SLXD); anything else means we are not
    # talking to a command-strings device, or the stream is corrupt.
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FramingError(f"non-ASCII byte 0x{raw[exc.start]:02x} inside a frame") from None
    if not text.isprintable():
        bad = next(ch for ch in text if not ch.isprintable())
        raise FramingError(f"control byte 0x{ord(bad):02x} inside a frame")
    return text


# --------------------------------------------------------------------------------------------- frames

_TOKEN = re.compile(r"\{[^}]*\}|[^\s{}]+")
#: Reply verbs: ``REP`` (current firmware), ``REPORT`` (PSM1000, UHF-R), ``REPLY`` (accepted by MB).
REPLY_VERBS: Final = frozenset({"REP", "REPORT", "REPLY"})


@dataclass(frozen=True, slots=True)
class Frame:
    """One parsed frame: ``REP 1 BATT_BARS 004`` → verb REP, channel 1, prop BATT_BARS, args ("004",)."""

    verb: str
    channel: int | None
    prop: str
    args: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        """``< REP ERR >``: the device rejected the last command (ref §1.2, D-ULXD)."""
        return self.verb in REPLY_VERBS and self.prop == "ERR"

    @property
    def text(self) -> str:
        """The arguments as one string (for unbraced multi-word values such as PSM1000 names)."""
        return " ".join(self.args)


def parse_frame(text: str) -> Frame:
    """Tokenise a frame's inner text. ``{...}`` values lose their braces and padding (ref §1.2)."""
    # Most traffic (SAMPLE, numeric REP) has no {...} string: a plain split is several times faster.
    tokens = [_unbrace(t) for t in _TOKEN.findall(text)] if "{" in text else text.split()
    if not tokens or not tokens[0]:
        raise FramingError("empty frame")
    verb = tokens[0].upper()
    rest = tokens[1:]
    channel: int | None = None
    if rest and rest[0].isdigit():
        channel = int(rest[0])
        rest = rest[1:]
    if not rest:
        raise FramingError(f"frame {text.strip()!r} has no property")
    return Frame(verb=verb, channel=channel, prop=rest[0].upper(), args=tuple(rest[1:]))


def _unbrace(token: str) -> str:
    if token.startswith("{") and token.endswith("}"):
        return token[1:-1].strip()
    return token


def encode(family: Family, verb: str, prop: str, channel: int | None = None, *args: str) -> bytes:
    """A command in the family's framing: ``< GET 0 ALL >`` or ``* GET 1 CHAN_NAME *``.

    PSM1000 commands end with CRLF (ref §1.2: PUBS PSM1000, CMP-PSM); the other TCP families need none.
    """
    parts = [verb, *([str(channel)] if channel is not None else []), prop, *args]
    body = " ".join(parts)
    if family.udp:
        return f"* {body} *".encode("ascii")
    suffix = "\r\n" if family is Family.P10T else ""
    return f"< {body} >{suffix}".encode("ascii")


def meter_rate_command(family: Family, channel: int, rate_ms: int) -> bytes:
    """Start (``rate_ms`` > 0) or stop metering of ``channel`` (0 = all channels where supported).

    TCP families: ``SET x METER_RATE nnnnn`` in ms, 5 digits, ``00000`` = off (D-ULXD, D-QLXD, D-SLXD);
    the valid range is 100–99999 for ULX-D/QLX-D and 100–65535 for SLX-D/AD (ref §1.4), so rates are clamped.
    UHF-R: ``METER x ALL sss`` in units of 30 ms, ``STOP`` to end (ref §1.4, MB, WMS).
    """
    if family.udp:
        if rate_ms <= 0:
            return encode(family, "METER", "ALL", channel, "STOP")
        units = min(999, max(1, round(rate_ms / 30)))
        return encode(family, "METER", "ALL", channel, f"{units:03d}")
    if rate_ms <= 0:
        return encode(family, "SET", "METER_RATE", channel, "00000")
    top = 99999 if family in (Family.ULXD, Family.QLXD, Family.P10T) else 65535
    return encode(family, "SET", "METER_RATE", channel, f"{min(top, max(100, rate_ms)):05d}")


# --------------------------------------------------------------------------------------------- decoding


class DecodeError(ValueError):
    """A well-framed reply whose value cannot be read (e.g. letters in a numeric field)."""


class ChannelFields(TypedDict, total=False):
    """Channel readings from one frame, in the units of the model. ``None`` = reported as unknown."""

    name: str | None
    frequency_hz: float | None
    tx_model: str | None
    """Transmitter model; ``None`` when the receiver says there is none (``UNKN``/``UNKNOWN``)."""
    tx_on: bool | None
    """Explicit transmitter on/off, where the family has it (PSM1000 RF mute)."""
    battery_bars: int | None
    battery_charge_ratio: float | None
    battery_runtime_seconds: float | None
    battery_type: str | None
    battery_health_ratio: float | None
    battery_cycles: int | None
    battery_temperature_celsius: float | None
    muted: bool | None
    power_locked: bool | None
    rf_a: float | None
    rf_b: float | None
    rf_c: float | None
    rf_d: float | None
    rf_combined: float | None
    active_a: bool | None
    active_b: bool | None
    active_c: bool | None
    active_d: bool | None
    link_quality_ratio: float | None
    audio_level_dbfs: float | None
    audio_peak_dbfs: float | None
    interference: bool | None
    encryption_error: bool | None
    link_up: bool | None
    """Whether the receiver hears a transmitter at all, from a meter reading (for dropout counting)."""
    clip: bool | None
    """Whether this reading shows audio overload (for clip counting)."""


class DeviceFields(TypedDict, total=False):
    """Device-level readings from one frame."""

    model: str | None
    firmware: str | None
    device_id: str | None


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one frame says: channel readings for ``channel`` (1-based) and/or device readings."""

    channel: int | None = None
    channel_fields: ChannelFields = field(default_factory=lambda: ChannelFields())
    device_fields: DeviceFields = field(default_factory=lambda: DeviceFields())

    @property
    def empty(self) -> bool:
        """Nothing the exporter uses (e.g. ``AUDIO_GAIN``, ``GROUP_CHAN``, ``METER_RATE`` echoes)."""
        return not self.channel_fields and not self.device_fields


# Sentinels: D-QLXD "the top values of a numeric field are error codes meaning not available": 255..252
# for 3-digit fields, 65535..65532 for 5-digit fields (ref §2 conventions). D-ULXD lists 65533 (battery
# comm error), 65534 (calculating), 65535 (unknown); we follow D-QLXD's wider rule for every family.
SENTINELS_3: Final = frozenset({252, 253, 254, 255})
SENTINELS_5: Final = frozenset({65532, 65533, 65534, 65535})
_UNKNOWN_TEXT: Final = frozenset({"UNKN", "UNKNOWN", "U", ""})
_ANTENNAS: Final = ("a", "b", "c", "d")


def _int(raw: str, what: str) -> int:
    if not raw.isdigit():
        raise DecodeError(f"{what}: {raw!r} is not a number")
    return int(raw)


def n3(raw: str, what: str = "value") -> int | None:
    """A 3-digit field; 252–255 → ``None``."""
    value = _int(raw, what)
    return None if value in SENTINELS_3 else value


def n5(raw: str, what: str = "value") -> int | None:
    """A 5-digit field; 65532–65535 → ``None``."""
    value = _int(raw, what)
    return None if value in SENTINELS_5 else value


def text_or_none(raw: str) -> str | None:
    """A text value; ``UNKN``/``UNKNOWN``/``U``/blank → ``None``."""
    value = raw.strip()
    return None if value.upper() in _UNKNOWN_TEXT else value


def on_off(raw: str, *, on: str = "ON", off: str = "OFF") -> bool | None:
    """``ON``/``OFF`` style flags; anything else (``UNKN``) → ``None``."""
    value = raw.strip().upper()
    if value == on:
        return True
    if value == off:
        return False
    return None


def khz_to_hz(raw: str) -> float | None:
    """Frequency in kHz as 6 (ULX-D, QLX-D, UHF-R) or 7 digits (AD, SLX-D), e.g. ``0594075`` → 594.075 MHz.

    Parsed as an integer, not as "3 digits of MHz" (MB's formatting breaks in 1 GHz bands, ref §3.2).
    """
    value = _int(raw, "frequency")
    return float(value) * 1000.0 if value > 0 else None


def _minus(raw: str, offset: int, what: str) -> float | None:
    value = n3(raw, what)
    return None if value is None else float(value - offset)


def ulxd_rf_dbm(raw: str) -> float | None:
    """ULX-D/QLX-D RF level: dBm = raw − 128 (D-ULXD; CMP agrees). D-QLXD states only the range 000–115;
    MB's percent scale (raw/115) is a display scale. The manufacturer's ULX-D document wins."""
    return _minus(raw, 128, "RF level")


def ulxd_audio_dbfs(raw: str) -> float | None:
    """ULX-D/QLX-D audio level: dBFS = raw − 50, range 000–050 (D-ULXD; CMP). MB's 2·raw is a display scale."""
    return _minus(raw, 50, "audio level")


#: ULX-D/QLX-D audio raw at the top of its 000–050 scale (0 dBFS) counts as a clip.
ULXD_AUDIO_TOP: Final = 50


def axtd_dbfs_or_dbm(raw: str) -> float | None:
    """Axient Digital and SLX-D RF (dBm) and audio (dBFS): value = raw − 120 (D-SLXD for SLX-D; CMP, OAVC and
    RFD quoting the AD PDF for AD). One Go client uses −128 for AD and MB uses display scales; −120 wins."""
    return _minus(raw, 120, "level")


#: SLX-D/AD audio peak raw at 0 dBFS (the top of the documented −120…0 range) counts as a clip on SLX-D.
SLXD_PEAK_TOP: Final = 120


def temperature_c(raw: str) -> float | None:
    """Battery temperature: actual = raw − 40 °C, 255 unknown (D-ULXD, D-QLXD; CMP/OAVC for AD)."""
    return _minus(raw, 40, "temperature")


def percent_ratio(raw: str, what: str) -> float | None:
    """A 0–100 % field as a 0–1 ratio (clamped: devices occasionally overshoot)."""
    value = n3(raw, what)
    return None if value is None else min(max(value / 100.0, 0.0), 1.0)


def minutes_seconds(raw: str, what: str = "run time") -> float | None:
    """Battery run time in minutes (5 digits) to seconds; 65532–65535 → None (D-ULXD, D-QLXD, D-SLXD)."""
    value = n5(raw, what)
    return None if value is None else value * 60.0


def bars(raw: str) -> int | None:
    """Battery bars 000–005 (3 digits); 255 unknown. UHF-R sends ``1``–``5`` or ``U`` (ref §2.4)."""
    if raw.strip().upper() == "U":
        return None
    value = n3(raw, "battery bars")
    if value is not None and value > 5:
        raise DecodeError(f"battery bars: {raw!r} is outside 0-5")
    return value


def diversity(raw: str) -> ChannelFields:
    """ULX-D/QLX-D/UHF-R antenna LEDs: ``AX`` A, ``XB`` B, ``AB`` both, ``XX`` none (D-ULXD, D-QLXD)."""
    value = raw.strip().upper()
    if len(value) != 2 or any(c not in "ABX" for c in value):
        raise DecodeError(f"antenna state {raw!r} is not one of AX, XB, AB, XX")
    a, b = value[0] == "A", value[1] == "B"
    return ChannelFields(active_a=a, active_b=b, link_up=a or b)


def _name(raw: str) -> str | None:
    value = raw.strip()
    return value or None


# ----- per-family channel property tables: property → decoder(args) -----------------------------------

_ChannelDecoder = Callable[[tuple[str, ...]], ChannelFields]


def _one(args: tuple[str, ...], prop: str) -> str:
    if not args:
        raise DecodeError(f"{prop}: no value")
    return args[0]


def _ulxd_audio(args: tuple[str, ...]) -> ChannelFields:
    raw = _one(args, "AUDIO_LVL")
    value = n3(raw, "audio level")
    if value is None or value > ULXD_AUDIO_TOP:
        # Above the documented 000–050 scale (MB's example line carries 098) there is no dBFS reading we
        # could defend: unknown, and not a clip.
        return ChannelFields(audio_level_dbfs=None, clip=None)
    return ChannelFields(audio_level_dbfs=float(value - 50), clip=value == ULXD_AUDIO_TOP)


_COMMON_TCP: Final[dict[str, _ChannelDecoder]] = {
    # CHAN_NAME is {8} on ULX-D/QLX-D, {31} on AD/SLX-D: braces and padding are already gone (parse_frame).
    "CHAN_NAME": lambda a: ChannelFields(name=_name(" ".join(a))),
    "FREQUENCY": lambda a: ChannelFields(frequency_hz=khz_to_hz(_one(a, "FREQUENCY"))),
}

_ULXD: Final[dict[str, _ChannelDecoder]] = {
    **_COMMON_TCP,
    "TX_TYPE": lambda a: ChannelFields(tx_model=text_or_none(_one(a, "TX_TYPE"))),
    "BATT_BARS": lambda a: ChannelFields(battery_bars=bars(_one(a, "BATT_BARS"))),
    "BATT_CHARGE": lambda a: ChannelFields(battery_charge_ratio=percent_ratio(_one(a, "BATT_CHARGE"), "charge")),
    "BATT_RUN_TIME": lambda a: ChannelFields(battery_runtime_seconds=minutes_seconds(_one(a, "BATT_RUN_TIME"))),
    "BATT_TYPE": lambda a: ChannelFields(battery_type=text_or_none(_one(a, "BATT_TYPE"))),
    "BATT_HEALTH": lambda a: ChannelFields(battery_health_ratio=percent_ratio(_one(a, "BATT_HEALTH"), "health")),
    "BATT_CYCLE": lambda a: ChannelFields(battery_cycles=n5(_one(a, "BATT_CYCLE"), "cycles")),
    "BATT_TEMP_C": lambda a: ChannelFields(battery_temperature_celsius=temperature_c(_one(a, "BATT_TEMP_C"))),
    "TX_PWR_LOCK": lambda a: ChannelFields(power_locked=on_off(_one(a, "TX_PWR_LOCK"))),
    # Transmitter mute exists on ULXD6/ULXD8 only; others answer UNKN (D-ULXD, D-QLXD).
    "TX_MUTE_STATUS": lambda a: ChannelFields(muted=on_off(_one(a, "TX_MUTE_STATUS"))),
    "RF_INT_DET": lambda a: ChannelFields(interference=_one(a, "RF_INT_DET").upper() != "NONE"),
    "ENCRYPTION_WARNING": lambda a: ChannelFields(encryption_error=on_off(_one(a, "ENCRYPTION_WARNING"))),
    # GET-able meters of the 2022 ULX-D document (older firmware may not answer, ref §6).
    "RX_RF_LVL": lambda a: ChannelFields(rf_combined=ulxd_rf_dbm(_one(a, "RX_RF_LVL"))),
    "RF_ANTENNA": lambda a: diversity(_one(a, "RF_ANTENNA")),
    "AUDIO_LVL": _ulxd_audio,
}


def _ulxd_sample(args: tuple[str, ...]) -> ChannelFields:
    # < SAMPLE x ALL nn aaa eee >: antenna LEDs, RF level, audio level (D-ULXD, D-QLXD, MB mic.py idx 3-5).
    if len(args) != 3:
        raise DecodeError(f"ULX-D/QLX-D SAMPLE needs 3 values, got {len(args)}")
    fields = diversity(args[0])
    fields.update(ChannelFields(rf_combined=ulxd_rf_dbm(args[1])))
    fields.update(_ulxd_audio((args[2],)))
    return fields


def _rssi(args: tuple[str, ...]) -> ChannelFields:
    # AD and SLX-D: < REP x RSSI ant vvv > per antenna (1=A … 4=D, RFD; D-SLXD); HA-SLX saw a single-value
    # combined form < REP x RSSI vvv > on a real SLXD4D.
    if len(args) == 1:
        return ChannelFields(rf_combined=axtd_dbfs_or_dbm(args[0]))
    if len(args) != 2:
        raise DecodeError(f"RSSI needs an antenna and a value, got {args!r}")
    index = _int(args[0], "antenna")
    if not 1 <= index <= 4:
        raise DecodeError(f"RSSI antenna {index} is outside 1-4")
    value = axtd_dbfs_or_dbm(args[1])
    fields = ChannelFields()
    fields[_rf_key(index - 1)] = value  # type: ignore[literal-required]
    return fields


def _rf_key(index: int) -> str:
    return f"rf_{_ANTENNAS[index]}"


_SLXD: Final[dict[str, _ChannelDecoder]] = {
    **_COMMON_TCP,
    # D-SLXD names it TX_MODEL; CMP and HA-SLX send TX_TYPE (ref §6), so accept both.
    "TX_MODEL": lambda a: ChannelFields(tx_model=text_or_none(_one(a, "TX_MODEL"))),
    "TX_TYPE": lambda a: ChannelFields(tx_model=text_or_none(_one(a, "TX_TYPE"))),
    "TX_BATT_BARS": lambda a: ChannelFields(battery_bars=bars(_one(a, "TX_BATT_BARS"))),
    "TX_BATT_MINS": lambda a: ChannelFields(battery_runtime_seconds=minutes_seconds(_one(a, "TX_BATT_MINS"))),
    "RSSI": _rssi,
    "AUDIO_LEVEL_PEAK": lambda a: _slxd_peak(_one(a, "AUDIO_LEVEL_PEAK")),
    "AUDIO_LEVEL_RMS": lambda a: ChannelFields(audio_level_dbfs=axtd_dbfs_or_dbm(_one(a, "AUDIO_LEVEL_RMS"))),
}


def _slxd_peak(raw: str) -> ChannelFields:
    value = n3(raw, "audio peak")
    return ChannelFields(
        audio_peak_dbfs=axtd_dbfs_or_dbm(raw), clip=None if value is None else value >= SLXD_PEAK_TOP
    )


def _slxd_sample(args: tuple[str, ...]) -> ChannelFields:
    # < SAMPLE x ALL audPeak audRms rfRssi > (D-SLXD SAMPLE section). The RF value is combined over both
    # antennas, so per-antenna values from an earlier GET are cleared rather than left to go stale.
    if len(args) != 3:
        raise DecodeError(f"SLX-D SAMPLE needs 3 values, got {len(args)}")
    fields = _slxd_peak(args[0])
    fields.update(
        ChannelFields(
            audio_level_dbfs=axtd_dbfs_or_dbm(args[1]), rf_combined=axtd_dbfs_or_dbm(args[2]), rf_a=None, rf_b=None
        )
    )
    return fields


# AD transmitter lock: ALL and POWER lock the power switch (WB mic.py); MENU/NONE do not.
_AD_POWER_LOCK: Final[Mapping[str, bool]] = {"ALL": True, "POWER": True, "MENU": False, "NONE": False}
#: Axient audio LED bitmap: bit 0x80 is the OL (overload) LED (MB mic.py ``bitmap >> 7``, CMP, OAVC).
AUDIO_OVERLOAD_BIT: Final = 0x80


def _ad_quality(raw: str) -> ChannelFields:
    # CHAN_QUALITY / SAMPLE qual: 0–5 (5 = best), 255 unknown (MB, CMP, OAVC). Ratio = quality / 5.
    value = n3(raw, "quality")
    if value is None:
        return ChannelFields(link_quality_ratio=None)
    if value > 5:
        raise DecodeError(f"quality {value} is outside 0-5")
    return ChannelFields(link_quality_ratio=value / 5.0)


def _ad_bitmap(raw: str) -> ChannelFields:
    value = _int(raw, "audio LED bitmap")
    return ChannelFields(clip=bool(value & AUDIO_OVERLOAD_BIT))


def _ad_mute(raw: str) -> bool | None:
    # TX_MUTE_MODE_STATUS: CMP maps MUTE → muted and ON → not muted; semantics UNCERTAIN (ref §2.2).
    value = raw.strip().upper()
    if value == "MUTE":
        return True
    if value in ("ON", "OFF"):
        return False
    return None


_AXTD: Final[dict[str, _ChannelDecoder]] = {
    **_COMMON_TCP,
    "TX_MODEL": lambda a: ChannelFields(tx_model=text_or_none(_one(a, "TX_MODEL"))),
    "TX_BATT_BARS": lambda a: ChannelFields(battery_bars=bars(_one(a, "TX_BATT_BARS"))),
    "TX_BATT_CHARGE_PERCENT": lambda a: ChannelFields(
        battery_charge_ratio=percent_ratio(_one(a, "TX_BATT_CHARGE_PERCENT"), "charge")
    ),
    "TX_BATT_MINS": lambda a: ChannelFields(battery_runtime_seconds=minutes_seconds(_one(a, "TX_BATT_MINS"))),
    "TX_BATT_TYPE": lambda a: ChannelFields(battery_type=text_or_none(_one(a, "TX_BATT_TYPE"))),
    "TX_BATT_HEALTH_PERCENT": lambda a: ChannelFields(
        battery_health_ratio=percent_ratio(_one(a, "TX_BATT_HEALTH_PERCENT"), "health")
    ),
    "TX_BATT_CYCLE_COUNT": lambda a: ChannelFields(battery_cycles=n5(_one(a, "TX_BATT_CYCLE_COUNT"), "cycles")),
    "TX_BATT_TEMP_C": lambda a: ChannelFields(battery_temperature_celsius=temperature_c(_one(a, "TX_BATT_TEMP_C"))),
    "TX_LOCK": lambda a: ChannelFields(power_locked=_AD_POWER_LOCK.get(_one(a, "TX_LOCK").upper())),
    "TX_MUTE_MODE_STATUS": lambda a: ChannelFields(muted=_ad_mute(_one(a, "TX_MUTE_MODE_STATUS"))),
    "CHAN_QUALITY": lambda a: _ad_quality(_one(a, "CHAN_QUALITY")),
    "RSSI": _rssi,
    "AUDIO_LEVEL_RMS": lambda a: ChannelFields(audio_level_dbfs=axtd_dbfs_or_dbm(_one(a, "AUDIO_LEVEL_RMS"))),
    "AUDIO_LEVEL_PEAK": lambda a: ChannelFields(audio_peak_dbfs=axtd_dbfs_or_dbm(_one(a, "AUDIO_LEVEL_PEAK"))),
    "AUDIO_LED_BITMAP": lambda a: _ad_bitmap(_one(a, "AUDIO_LED_BITMAP")),
    "INTERFERENCE_STATUS": lambda a: ChannelFields(interference=_one(a, "INTERFERENCE_STATUS").upper() != "NONE"),
    "ENCRYPTION_STATUS": lambda a: ChannelFields(
        encryption_error=on_off(_one(a, "ENCRYPTION_STATUS"), on="ERROR", off="OK")
    ),
}


def _ad_rf_section(tokens: tuple[str, ...]) -> tuple[list[bool], list[float | None], int]:
    """One RF section: antStats (one char per antenna: B blue = active, R red, X off) then one
    (bitmap, rssi) pair per antenna (RFD quoting the AD PDF; OAVC). Returns states, dBm, tokens used."""
    if not tokens:
        raise DecodeError("Axient SAMPLE has no RF section")
    stats = tokens[0].upper()
    if len(stats) not in (2, 4) or any(c not in "BRX" for c in stats):
        raise DecodeError(f"Axient antenna status {tokens[0]!r} is not 2 or 4 of B/R/X")
    needed = 1 + 2 * len(stats)
    if len(tokens) < needed:
        raise DecodeError(f"Axient SAMPLE RF section needs {needed} values, got {len(tokens)}")
    # 'R' (red) still means the antenna receives (with a warning), so it counts as active — UNCERTAIN (ref §2.2).
    active = [c != "X" for c in stats]
    levels = [axtd_dbfs_or_dbm(tokens[2 + 2 * i]) for i in range(len(stats))]
    return active, levels, needed


def _axtd_sample(args: tuple[str, ...]) -> ChannelFields:
    # < SAMPLE x ALL qual audBitmap audPeak audRms rfAntStats (rfBitmap rfRssi)×n [second RF section] >
    # Standard n=2; Quadversity n=4; FD-C appends a second RF section for the second carrier (RFD, OAVC).
    if len(args) < 5:
        raise DecodeError(f"Axient SAMPLE needs at least 5 values, got {len(args)}")
    fields = _ad_quality(args[0])
    fields.update(_ad_bitmap(args[1]))
    fields.update(
        ChannelFields(audio_peak_dbfs=axtd_dbfs_or_dbm(args[2]), audio_level_dbfs=axtd_dbfs_or_dbm(args[3]))
    )
    active, levels, used = _ad_rf_section(args[4:])
    rest = args[4 + used :]
    if rest:
        # FD-C: the same antennas on the second carrier. Per antenna we keep the stronger carrier and
        # count the antenna active if either carrier uses it (our choice; the receiver combines both).
        active2, levels2, used2 = _ad_rf_section(rest)
        if len(active2) != len(active) or used2 != len(rest):
            raise DecodeError("Axient FD-C SAMPLE sections do not match")
        active = [x or y for x, y in zip(active, active2, strict=True)]
        levels = [_max_opt(x, y) for x, y in zip(levels, levels2, strict=True)]
    for i, (is_active, level) in enumerate(zip(active, levels, strict=True)):
        fields[_rf_key(i)] = level  # type: ignore[literal-required]
        fields[f"active_{_ANTENNAS[i]}"] = is_active  # type: ignore[literal-required]
    quality = fields.get("link_quality_ratio")
    fields["link_up"] = any(active) and quality != 0.0
    return fields


def _max_opt(x: float | None, y: float | None) -> float | None:
    if x is None:
        return y
    if y is None:
        return x
    return max(x, y)


def _uhfr_rf(raw: str) -> float | None:
    # UHF-R SAMPLE RF: no dBm conversion is documented. MB scales 100·(100 − raw)/80, i.e. raw reads as the
    # magnitude of a negative dBm (100 = floor). We export −raw dBm and mark it UNCERTAIN (ref §2.4).
    value = n3(raw, "RF level")
    return None if value is None else -float(value)


def _uhfr_sample(args: tuple[str, ...]) -> ChannelFields:
    # * SAMPLE x ALL nn aaa bbb d eee *: diversity, RF A, RF B, battery bars (1–5/U), audio LED bitmap
    # 000–255 with bit 7 = peak (MB mic.py, S06 mic_uhfr.py). The keyword form seen by WMS is not supported.
    if len(args) != 5:
        raise DecodeError(f"UHF-R SAMPLE needs 5 values, got {len(args)}")
    fields = diversity(args[0])
    fields.update(ChannelFields(rf_a=_uhfr_rf(args[1]), rf_b=_uhfr_rf(args[2]), battery_bars=bars(args[3])))
    fields.update(_ad_bitmap(args[4]))
    return fields


def _uhfr_name(args: tuple[str, ...]) -> ChannelFields:
    # 12 characters, unbraced, underscores for spaces (WMS; MB replaces _ with space).
    return ChannelFields(name=_name(" ".join(args).replace("_", " ")))


_UHFR: Final[dict[str, _ChannelDecoder]] = {
    "CHAN_NAME": _uhfr_name,
    "FREQUENCY": lambda a: ChannelFields(frequency_hz=khz_to_hz(_one(a, "FREQUENCY"))),
    "TX_BAT": lambda a: ChannelFields(battery_bars=bars(_one(a, "TX_BAT"))),
    "TX_TYPE": lambda a: ChannelFields(tx_model=text_or_none(_one(a, "TX_TYPE"))),
}


def _p10t_frequency(args: tuple[str, ...]) -> ChannelFields:
    # CMP-PSM reads the first 6 digits as kHz (ref §2.5); longer values carry finer digits we drop.
    raw = _one(args, "FREQUENCY")
    return ChannelFields(frequency_hz=khz_to_hz(raw[:6]))


def _p10t_rf_mute(args: tuple[str, ...]) -> ChannelFields:
    # RF_MUTE 1 = muted (not transmitting), 0 = on air (PUBS PSM1000, CMP-PSM). The P10T *is* the
    # transmitter, so "present" means on air.
    raw = _one(args, "RF_MUTE")
    if raw not in ("0", "1"):
        raise DecodeError(f"RF_MUTE {raw!r} is not 0 or 1")
    return ChannelFields(tx_on=raw == "0")


_P10T: Final[dict[str, _ChannelDecoder]] = {
    # Unbraced names (CMP-PSM, ref §5.5); accept braces too.
    "CHAN_NAME": lambda a: ChannelFields(name=_name(" ".join(a))),
    "FREQUENCY": _p10t_frequency,
    "RF_MUTE": _p10t_rf_mute,
    # AUDIO_IN_LVL_L/_R meters have undocumented units (CMP-PSM: "unknown format"): not exported.
}

_CHANNEL_TABLES: Final[Mapping[Family, Mapping[str, _ChannelDecoder]]] = {
    Family.ULXD: _ULXD,
    Family.QLXD: _ULXD,
    Family.SLXD: _SLXD,
    Family.AXTD: _AXTD,
    Family.UHFR: _UHFR,
    Family.P10T: _P10T,
}

_SAMPLE_DECODERS: Final[Mapping[Family, _ChannelDecoder]] = {
    Family.ULXD: _ulxd_sample,
    Family.QLXD: _ulxd_sample,
    Family.SLXD: _slxd_sample,
    Family.AXTD: _axtd_sample,
    Family.UHFR: _uhfr_sample,
}


def _firmware(raw: str) -> str | None:
    # {24} Maj.Min.Pack.Build; a trailing '*' flags an incomplete update / failed self-test (D-ULXD,
    # D-SLXD). Kept as-is: it is exactly what an operator needs to see in the firmware label.
    return _name(raw)


def _device(frame: Frame, family: Family) -> DeviceFields | None:
    prop = frame.prop
    value = frame.text
    if prop == "MODEL" or (prop == "MODEL_NAME" and family is Family.UHFR):
        return DeviceFields(model=_name(value))
    if prop == "FW_VER":
        return DeviceFields(firmware=_firmware(value))
    if prop in ("DEVICE_ID", "DEVICE_NAME"):
        return DeviceFields(device_id=_name(value))
    return None


def decode(family: Family, frame: Frame) -> Decoded:
    """What ``frame`` says, in engineering units; :attr:`Decoded.empty` for things the model has no field for.

    Raises :class:`DecodeError` for a value that cannot be read.
    """
    if frame.verb == "SAMPLE":
        decoder = _SAMPLE_DECODERS.get(family)
        if decoder is None or frame.channel is None or not frame.channel:
            return Decoded()
        if frame.prop != "ALL":
            raise DecodeError(f"SAMPLE {frame.prop!r}: only SAMPLE x ALL is known")
        return Decoded(channel=frame.channel, channel_fields=decoder(frame.args))
    if frame.verb not in REPLY_VERBS or frame.is_error:
        return Decoded()
    if frame.channel is None or frame.channel == 0:
        device = _device(frame, family)
        return Decoded(device_fields=device) if device else Decoded()
    table = _CHANNEL_TABLES[family]
    decoder = table.get(frame.prop)
    if decoder is None:
        return Decoded()
    return Decoded(channel=frame.channel, channel_fields=decoder(frame.args))
