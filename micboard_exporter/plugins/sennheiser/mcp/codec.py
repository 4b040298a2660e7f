"""Pure codec for the Sennheiser Media Control Protocol (ew G3 / G4 / 2000, ASCII over UDP 53212).

No I/O, no clock, no logging. Source: Sennheiser TI 1254 "Media control protocol description" v1.0 (ew G4)
and the ew G3/2000 edition, as summarised in ``sennheiser-protocols.md`` §3. The manufacturer's document
wins over client code (e.g. ``Name`` keeps everything after the keyword, spaces included).

Lines are ``Keyword param…`` terminated by CR; a datagram may carry several lines. Error replies are
``<code>: <text> [ <instruction> ]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: The port MCP devices send from and, on the ew G4, the only source port they answer to (TI 1254 p.5).
MCP_PORT: Final = 53212
#: Longer input is silently ignored by the device (TI 1254 p.5).
MAX_MESSAGE: Final = 1500

#: TI 1254 p.11: ``Push <timeout 0..300 s> <cycle 0..60000 ms, 100 ms steps> <mode 0..7>``.
MODE_CONFIG_ON_CHANGE: Final = 1
MODE_BLOCK_ON_WARNING: Final = 2
MODE_BLOCK_ON_PILOT_OR_BATTERY: Final = 4

ERROR_TEXT: Final = {
    1000: "Invalid command",
    1010: "Invalid parameter",
    1020: "Value out of range",
    1030: "Relative parameter not supported",
    1040: "Invalid number of parameters",
    1050: "Incorrect termination",
}

_ERROR = re.compile(r"^(\d{4}):\s*(.*?)\s*(?:\[\s*(.*?)\s*\])?\s*$")


class MalformedLine(ValueError):
    """A line that is not what its keyword promises."""


def encode(*words: object) -> bytes:
    """One instruction: words separated by blanks, CR-terminated, ASCII."""
    line = " ".join(str(w) for w in words)
    data = (line + "\r").encode("ascii")
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"MCP instruction longer than {MAX_MESSAGE} characters")
    return data


def encode_push(timeout_s: int, cycle_ms: int, mode: int) -> bytes:
    """``Push`` with the documented ranges checked here, so the device never has to answer 1020."""
    if not 0 <= timeout_s <= 300:
        raise ValueError("Push timeout must be 0..300 s")
    if not 0 <= cycle_ms <= 60000 or cycle_ms % 100:
        raise ValueError("Push cycle must be 0..60000 ms in 100 ms steps")
    if not 0 <= mode <= 7:
        raise ValueError("Push mode must be 0..7")
    return encode("Push", timeout_s, cycle_ms, mode)


def split_lines(datagram: bytes) -> list[str]:
    """The lines of a datagram: split on CR or LF (some firmware and clients use LF), blanks dropped."""
    text = datagram.decode("latin-1")
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]


@dataclass(frozen=True, slots=True)
class Line:
    """One reply line: ``keyword`` and the text after it."""

    keyword: str
    rest: str

    @property
    def params(self) -> list[str]:
        """Blank-separated parameters."""
        return self.rest.split()


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """``1000: Invalid command [ AfPOut 24 ]``: code, text and the instruction it refers to."""

    code: int
    text: str
    instruction: str | None


def parse_line(line: str) -> Line | ErrorReply:
    """A reply line as an error or as keyword + rest (which for ``Name`` may contain spaces)."""
    match = _ERROR.match(line)
    if match:
        return ErrorReply(code=int(match.group(1)), text=match.group(2), instruction=match.group(3) or None)
    keyword, _, rest = line.partition(" ")
    return Line(keyword=keyword, rest=rest.strip())


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts superscripts such as ``²``, which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _ints(line: Line, count: int) -> list[int]:
    params = line.params
    if len(params) < count:
        raise MalformedLine(f"{line.keyword} expects {count} values: {line.rest!r}")
    try:
        return [int(p) for p in params[:count]]
    except ValueError as exc:
        raise MalformedLine(f"{line.keyword} has a non-integer value: {line.rest!r}") from exc


@dataclass(frozen=True, slots=True)
class Frequency:
    """``Frequency <kHz> <bank> <channel>``."""

    khz: int
    bank: int | None
    channel: int | None


def parse_frequency(line: Line) -> Frequency:
    """Frequency in kHz; bank/channel are optional on set echoes."""
    params = line.params
    if not params or not _is_number(params[0]):
        raise MalformedLine(f"Frequency without kHz: {line.rest!r}")
    extra = [int(p) if _is_number(p) else None for p in params[1:3]] + [None, None]
    return Frequency(khz=int(params[0]), bank=extra[0], channel=extra[1])


@dataclass(frozen=True, slots=True)
class AntennaRf:
    """``RF1``/``RF2 <min %> <max %> <active 0/1>`` since the last cycle."""

    antenna: int
    min_pct: int
    max_pct: int
    active: bool


def parse_antenna_rf(line: Line) -> AntennaRf:
    """Per-antenna RF of the cyclic block."""
    lo, hi, act = _ints(line, 3)
    return AntennaRf(antenna=int(line.keyword[2:]), min_pct=lo, max_pct=hi, active=act == 1)


@dataclass(frozen=True, slots=True)
class CurrentRf:
    """``RF <level %> <antenna 1/2> <pilot 0/1>``."""

    level_pct: int
    antenna: int
    pilot: bool


def parse_current_rf(line: Line) -> CurrentRf:
    """Current RF level and the active diversity antenna."""
    level, antenna, pilot = _ints(line, 3)
    return CurrentRf(level_pct=level, antenna=antenna, pilot=pilot == 1)


#: ``States`` / ``AF`` mute bits (TI 1254 p.23): bit 0 muted for the whole cycle, 1 TX, 2 RF, 3 RX.
MUTE_WHOLE_CYCLE: Final = 1
MUTE_TX: Final = 2
MUTE_RF: Final = 4
MUTE_RX: Final = 8


@dataclass(frozen=True, slots=True)
class States:
    """EM: ``States <mute bits> <pilot 0/1/2>``; SR: ``States <rf mute now> <rf mute flag>``."""

    values: tuple[int, ...]


def parse_states(line: Line) -> States:
    """The States line, kept as numbers; the meaning depends on EM vs SR (two values either way)."""
    return States(values=tuple(_ints(line, 2)))


def parse_af(line: Line) -> tuple[int, ...]:
    """EM ``AF <peak %> <hold %> <mute bits>``; SR ``AF <l1> <l2> <hold1> <hold2>``. Keyword ``Af`` too."""
    try:
        values = tuple(int(p) for p in line.params)
    except ValueError as exc:
        raise MalformedLine(f"AF has a non-integer value: {line.rest!r}") from exc
    if len(values) < 3:
        raise MalformedLine(f"AF expects at least 3 values: {line.rest!r}")
    return values


#: ``Bat`` gauge in % (three steps); ``?`` = no battery telegram received: transmitter off or out of range.
BAT_LEVELS: Final = frozenset({0, 30, 70, 100})


def parse_bat(line: Line) -> float | None:
    """``Bat 70`` → 0.7; ``Bat ?`` → ``None`` (no transmitter: never 0 %)."""
    value = line.rest.strip()
    if value == "?":
        return None
    if not _is_number(value):
        raise MalformedLine(f"Bat is neither a percentage nor '?': {value!r}")
    return min(int(value), 100) / 100.0


def parse_msg(line: Line) -> frozenset[str]:
    """``Msg OK`` → no warnings; else every blank-separated token (RFJS kept only the first: a bug)."""
    tokens = frozenset(line.params)
    return frozenset() if tokens <= {"OK"} else tokens - {"OK"}


def parse_int(line: Line) -> int:
    """Single-integer lines: ``Config``, ``Squelch``, ``AfOut``, ``Equalizer``."""
    return _ints(line, 1)[0]


def parse_mute(line: Line) -> bool:
    """``Mute 0`` / ``Mute 1``."""
    return _ints(line, 1)[0] == 1


@dataclass(frozen=True, slots=True)
class PushEcho:
    """The device's acknowledgement of ``Push``."""

    timeout_s: int
    cycle_ms: int
    mode: int


def parse_push(line: Line) -> PushEcho:
    """The echoed ``Push`` line."""
    timeout, cycle, mode = _ints(line, 3)
    return PushEcho(timeout_s=timeout, cycle_ms=cycle, mode=mode)


def rf_percent_to_dbm(percent: float) -> float:
    """RF % → dBm.

    TI 1254 p.21: 0 % = 0 dBµV and 100 % = 40 dBµV (values above 100 % occur); the scale is taken as
    linear in dB, i.e. dBµV = % × 0.4. dBµV → dBm in a 50 Ω system: 0 dBm = 106.99 dBµV, so
    dBm = dBµV − 107.
    """
    return percent * 0.4 - 107.0


def af_percent_to_dbfs(percent: float) -> float:
    """AF % → dBFS: 0 % = −50 dB and 100 % = peak (TI 1254 p.27), taken as linear in dB and as 0 dBFS
    at 100 % (the reference point is inferred, §6 item 7); readings above 100 % are clipped to 0 dBFS."""
    return min(-50.0 + percent * 0.5, 0.0)
