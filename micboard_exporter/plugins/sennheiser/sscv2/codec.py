"""Pure SSCv2 codec: Server-Sent Events framing, JSON bodies, resource paths and unit conversion.

No I/O, no clock, no logging. Sources: ``sennheiser-protocols.md`` §1 ([OAS-EWDX] is Sennheiser's own
OpenAPI file for EW-DX and wins over client code where they differ; Spectera facts are from [CMP-SPEC]).

Resources are kept in a *resource cache*: a mapping from the full path (``/api/channel/0/level``) to the
JSON value a GET returns, which is also exactly what an SSE notification carries for that path. A value of
:data:`ABSENT` marks a resource the device says does not exist right now (HTTP 422 on
``/api/transmitters/{tx}``: no transmitter linked; or ``null`` in a notification: member removed).
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final


class MalformedResponse(ValueError):
    """A body or event could not be decoded into the documented shape."""


class _Absent(Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


#: The device answered "does not exist right now" (HTTP 422 or a ``null`` notification).
ABSENT: Final = _Absent.ABSENT

ResourceValue = Any  # decoded JSON, or ABSENT

API_PREFIX: Final = "/api"
SUBSCRIPTIONS_PATH: Final = "/api/ssc/state/subscriptions"

# --------------------------------------------------------------------------------------------------
# Server-Sent Events (WHATWG HTML "9.2 Server-sent events", event stream interpretation)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: ``event`` defaults to ``"message"``; ``data`` lines joined by LF."""

    event: str
    data: str
    id: str | None = None


class SSEParser:
    """Incremental event-stream parser.

    Follows the standard rather than one client's habit: lines end in CRLF, LF or CR (a CR at the end of a
    chunk may be followed by the LF in the next one); one optional space after the colon is removed, so
    ``data:{…}`` (the form in Sennheiser's OpenAPI example) and ``data: {…}`` mean the same; lines starting
    with ``:`` are comments; an event is dispatched on a blank line and only if it has data. ``max_event``
    bounds the characters buffered for one event so a device cannot grow our memory without limit.
    """

    def __init__(self, *, max_event: int = 1 << 20) -> None:
        self._max_event = max_event
        self._line = ""
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, chunk: str) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed."""
        events: list[SSEEvent] = []
        for line in self._lines(chunk):
            event = self._process(line)
            if event is not None:
                events.append(event)
        return events

    def _lines(self, chunk: str) -> Iterator[str]:
        start = 0
        i = 0
        n = len(chunk)
        if self._skip_lf and n and chunk[0] == "\n":
            start = i = 1
        self._skip_lf = False
        while i < n:
            c = chunk[i]
            if c == "\r" or c == "\n":
                line = self._line + chunk[start:i]
                self._line = ""
                # Checked on whole lines too, not only on the partial one held between chunks: otherwise
                # the same stream would pass or fail depending on where the network split it.
                if len(line) > self._max_event:
                    raise MalformedResponse(f"event stream line longer than {self._max_event} characters")
                yield line
                if c == "\r":
                    if i + 1 < n:
                        if chunk[i + 1] == "\n":
                            i += 1
                    else:
                        self._skip_lf = True
                start = i + 1
            i += 1
        self._line += chunk[start:]
        if len(self._line) > self._max_event:
            raise MalformedResponse(f"event stream line longer than {self._max_event} characters")

    def _process(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self._max_event:
                raise MalformedResponse(f"event larger than {self._max_event} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._size = [], "", 0
        if not data:
            return None
        return SSEEvent(event=event or "message", data="\n".join(data), id=self.last_event_id)


# --------------------------------------------------------------------------------------------------
# Bodies and events
# --------------------------------------------------------------------------------------------------


def decode_json(body: bytes | str) -> Any:
    """Decode a JSON body; raise :class:`MalformedResponse` with a short excerpt otherwise."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        excerpt = body[:60]
        raise MalformedResponse(f"malformed JSON ({exc}): {excerpt!r}") from exc
    except RecursionError:
        # json nests by recursion: a body of a few kilobytes of "[[[[" would otherwise escape as a bug.
        raise MalformedResponse(f"JSON nested too deeply: {body[:60]!r}") from None


def normalize_path(path: str) -> str:
    """Resource paths as keys: always with the ``/api`` prefix.

    Spectera and the EW-DX client send and receive ``/api/...``; the EW-DX OpenAPI examples list paths
    without the prefix. Which one the firmware echoes is unverified, so both are accepted.
    """
    path = "/" + path.strip().lstrip("/")
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return path
    return API_PREFIX + path


def parse_open_event(data: str) -> str:
    """The ``sessionUUID`` from the ``open`` event (falling back to the last segment of ``path``)."""
    obj = decode_json(data)
    if isinstance(obj, dict):
        uuid = obj.get("sessionUUID")
        if isinstance(uuid, str) and uuid:
            return uuid
        path = obj.get("path")
        if isinstance(path, str) and path.rstrip("/"):
            return path.rstrip("/").rsplit("/", 1)[-1]
    raise MalformedResponse(f"open event without sessionUUID: {data[:80]!r}")


def session_from_content_location(value: str) -> str | None:
    """Session id from ``Content-Location``: a bare UUID ([OAS-EWDX]) or a path ending in it ([DJM])."""
    value = value.strip().rstrip("/")
    return value.rsplit("/", 1)[-1] or None if value else None


def parse_notification(data: str) -> dict[str, ResourceValue]:
    """A notification's data: ``{path: full GET representation}``; ``null`` = resource removed."""
    obj = decode_json(data)
    if not isinstance(obj, dict):
        raise MalformedResponse(f"notification is not an object: {data[:80]!r}")
    return {normalize_path(k): (ABSENT if v is None else v) for k, v in obj.items()}


def parse_subscription_error(body: bytes) -> str | None:
    """The offending path from a 400 answer to a subscription PUT: ``{"path": …, "error": 404}``."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("path"), str):
        return normalize_path(obj["path"])
    return None


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or ``None`` when it is unusable.

    The header is either delay-seconds (``120``) or an HTTP-date (``Fri, 31 Dec 1999 23:59:59 GMT``);
    ``now`` is the wall-clock time (POSIX seconds) the date is measured from. A date in the past gives a
    negative number: the caller decides what "already over" means. Bounds are the caller's too.
    """
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)  # float, not int: no digit limit, and an absurd length is just "long" (inf)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are always GMT; the obsolete forms parse without a zone
        when = when.replace(tzinfo=datetime.UTC)
    try:
        return when.timestamp() - now
    except (OverflowError, ValueError, OSError):
        return None


def encode_path_list(paths: list[str]) -> bytes:
    """Body of ``PUT /api/ssc/state/subscriptions/{uuid}``: a JSON array of resource paths."""
    return json.dumps(paths, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------------
# EW-DX resources ([OAS-EWDX]; channel and transmitter indexes are 0-based on the wire)
# --------------------------------------------------------------------------------------------------

IDENTITY: Final = "/api/device/identity"
FIRMWARE: Final = "/api/firmware/update/state"
SITE: Final = "/api/device/site"
DEVICE_STATE: Final = "/api/device/state"
SPECTERA_MOBILES: Final = "/api/mts/paired/all"
SPECTERA_RF_CHANNELS: Final = "/api/rf/channels"

#: EW-DX product codes and their receiver channel counts ([OAS-EWDX] identity enum).
EWDX_CHANNELS: Final[Mapping[str, int]] = {"EWDX2CHS": 2, "EWDX2CHDS": 2, "EWDX4CHDS": 4}


def channel_paths(ch: int) -> tuple[str, ...]:
    """Receiver-side resources of 0-based channel ``ch`` (these always exist on a valid channel)."""
    base = f"/api/channel/{ch}"
    return (
        base,
        f"/api/rf/channels/{ch}",
        f"{base}/warnings",
        f"{base}/signalStrengthIndicator",
        f"{base}/signalQualityIndicator",
        f"{base}/diversityIndicator",
        f"{base}/level",
    )


def transmitter_paths(tx: int) -> tuple[str, ...]:
    """Transmitter resources linked to 0-based channel ``tx``; each answers 422 with no transmitter."""
    base = f"/api/transmitters/{tx}"
    return (base, f"{base}/battery", f"{base}/warnings")


@dataclass(frozen=True, slots=True)
class Identity:
    """``/api/device/identity``."""

    product: str | None
    serial: str | None
    vendor: str | None = None


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _obj(value: ResourceValue) -> Mapping[str, Any] | None:
    return value if isinstance(value, dict) else None


def parse_identity(value: ResourceValue) -> Identity:
    """Identity from ``/api/device/identity`` (EW-DX and Spectera share the shape)."""
    obj = _obj(value)
    if obj is None:
        raise MalformedResponse(f"identity is not an object: {value!r:.80}")
    return Identity(product=_str(obj, "product"), serial=_str(obj, "serial"), vendor=_str(obj, "vendor"))


def parse_firmware(value: ResourceValue) -> str | None:
    """Firmware version: EW-DX keeps it in ``/api/firmware/update/state`` ``deviceVersion``, not identity."""
    obj = _obj(value)
    return _str(obj, "deviceVersion") if obj is not None else None


def parse_meter(value: ResourceValue) -> float | None:
    """``{"value": n}`` meters (RSSI dBm, RSQI %, diversity 0-2, level dBFS)."""
    obj = _obj(value)
    return _num(obj.get("value")) if obj is not None else None


def parse_warnings(value: ResourceValue) -> frozenset[str] | None:
    """A warnings array; ``None`` when unknown (absent or not an array)."""
    if not isinstance(value, list):
        return None
    return frozenset(w for w in value if isinstance(w, str))


def frequency_hz(value: ResourceValue) -> float | None:
    """``/api/rf/channels/{ch}`` ``frequency`` is integer kHz ([OAS-EWDX], e.g. 470200) → Hz."""
    obj = _obj(value)
    if obj is None:
        return None
    khz = _num(obj.get("frequency"))
    return khz * 1000.0 if khz is not None and khz > 0 else None


def link_quality_ratio(value: ResourceValue) -> float | None:
    """RSQI % 0..100 ([OAS-EWDX]) → 0..1; 0 % means "no signal" and stays a real 0."""
    pct = parse_meter(value)
    return None if pct is None else min(max(pct / 100.0, 0.0), 1.0)


def active_antenna(value: ResourceValue) -> dict[str, bool] | None:
    """Diversity indicator 0/1/2 = none / antenna A / antenna B (meaning from SSC v1 sources, §2.6)."""
    v = parse_meter(value)
    if v is None or v not in (0.0, 1.0, 2.0):
        return None
    return {"a": v == 1.0, "b": v == 2.0}


@dataclass(frozen=True, slots=True)
class Battery:
    """``/api/transmitters/{tx}/battery``, converted to base units."""

    type: str | None
    charge_ratio: float | None
    runtime_seconds: float | None


#: [OAS-EWDX] battery ``type`` → the model's short code. "Battery" is the BA 70 Li-ion pack
#: (inferred from [CMP-EWDX], which shows runtime only for it).
BATTERY_TYPES: Final[Mapping[str, str]] = {"Battery": "LION", "PrimaryCell": "PRIMARY"}


def parse_battery(value: ResourceValue) -> Battery | None:
    """Gauge % → ratio; ``lifetime`` is **minutes** ([OAS-EWDX]) → seconds, reported for the BA 70 only."""
    obj = _obj(value)
    if obj is None:
        return None
    kind = _str(obj, "type")
    if kind == "NoBattery":
        return Battery(type=None, charge_ratio=None, runtime_seconds=None)
    gauge = _num(obj.get("gauge"))
    lifetime = _num(obj.get("lifetime"))
    return Battery(
        type=BATTERY_TYPES.get(kind or "", kind.upper() if kind else None),
        charge_ratio=None if gauge is None or gauge < 0 else min(gauge / 100.0, 1.0),
        runtime_seconds=lifetime * 60.0 if kind == "Battery" and lifetime is not None and lifetime >= 0 else None,
    )


@dataclass(frozen=True, slots=True)
class Transmitter:
    """``/api/transmitters/{tx}``: the fields the exporter shows."""

    type: str | None
    muted: bool | None
    name: str | None


def parse_transmitter(value: ResourceValue) -> Transmitter | None:
    """Transmitter details, or ``None`` when absent (422) or not an object."""
    obj = _obj(value)
    if obj is None:
        return None
    mute = obj.get("mute")
    return Transmitter(type=_str(obj, "type"), muted=mute if isinstance(mute, bool) else None, name=_str(obj, "name"))


def parse_channel_name(value: ResourceValue) -> str | None:
    """``/api/channel/{ch}`` ``name`` (≤ 8 characters on the device)."""
    obj = _obj(value)
    return _str(obj, "name") if obj is not None else None


# --------------------------------------------------------------------------------------------------
# Spectera ([CMP-SPEC] src/types.ts, state_maps.ts)
# --------------------------------------------------------------------------------------------------

_MOBILE_PATH = re.compile(r"^/api/mts/paired/all/([^/]+)$")
#: A freshly paired mobile device still syncing reports this serial; the Companion module skips it.
SYNCING_SERIAL: Final = "0000000000"


@dataclass(frozen=True, slots=True)
class MobileDevice:
    """One paired Spectera mobile device (SEK bodypack / SKM handheld), in base units."""

    uid: str
    name: str | None
    type: str | None
    connected: bool
    rf_channel_id: Any
    charge_ratio: float | None
    runtime_seconds: float | None
    battery_low: bool | None
    rssi_dbm: float | None
    link_quality_ratio: float | None
    dominant_antenna: str | None
    interference: bool | None
    syncing: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


def mobile_uid_from_path(path: str) -> str | None:
    """``/api/mts/paired/all/{mtUid}`` → ``mtUid``."""
    m = _MOBILE_PATH.match(path)
    return m.group(1) if m else None


def parse_mobile(value: ResourceValue) -> MobileDevice | None:
    """One mobile device. Sentinels: fill level / runtime ``-1`` = off/unknown, ``NotAvailable`` antenna."""
    obj = _obj(value)
    if obj is None:
        return None
    uid = obj.get("mtUid")
    if uid is None:
        return None
    fill = _num(obj.get("batteryFillLevel"))
    runtime = _num(obj.get("batteryRuntime"))
    rssi = _num(obj.get("rssi"))
    lqi = _num(obj.get("micLqi"))
    low = obj.get("batteryLow")
    antenna = _str(obj, "dominantAntenna")
    interference = obj.get("interference")
    severity = _str(interference, "severity") if isinstance(interference, dict) else None
    return MobileDevice(
        uid=str(uid),
        name=_str(obj, "name"),
        type=_str(obj, "type") if _str(obj, "type") != "Unknown" else None,
        connected=obj.get("state") == "Connected",
        rf_channel_id=obj.get("rfChannelId"),
        charge_ratio=None if fill is None or fill < 0 else min(fill / 100.0, 1.0),
        # batteryRuntime is minutes ([CMP-SPEC] utils.ts); -1 = off/unknown.
        runtime_seconds=None if runtime is None or runtime < 0 else runtime * 60.0,
        battery_low=low if isinstance(low, bool) else None,
        rssi_dbm=rssi,
        # micLqi is 0..4 ([CMP-SPEC] types.ts) → ratio of the best value.
        link_quality_ratio=None if lqi is None or lqi < 0 else min(lqi / 4.0, 1.0),
        dominant_antenna=None if antenna in (None, "NotAvailable") else antenna,
        interference=None if severity is None else severity != "None",
        syncing=obj.get("serial") == SYNCING_SERIAL,
    )


def parse_mobile_list(value: ResourceValue) -> list[MobileDevice]:
    """``/api/mts/paired/all``: array of mobile devices, in the base station's order."""
    if not isinstance(value, list):
        raise MalformedResponse(f"paired mobile devices is not an array: {value!r:.80}")
    return [m for m in (parse_mobile(v) for v in value) if m is not None]


def spectera_frequencies(value: ResourceValue) -> dict[Any, float]:
    """``/api/rf/channels`` → ``{rf channel id: Hz}`` (frequency in kHz per [CMP-SPEC])."""
    result: dict[Any, float] = {}
    items = value if isinstance(value, list) else []
    for item in items:
        if isinstance(item, dict):
            khz = _num(item.get("frequency"))
            key = item.get("id", item.get("rfChannelId"))
            if khz is not None and key is not None:
                result[key] = khz * 1000.0
    return result


def antenna_label(value: str | None) -> str | None:
    """Spectera dominant antenna (port ``a``..``d``, any case, maybe prefixed) → metric label."""
    if not value:
        return None
    last = value.strip()[-1:].lower()
    return last if last in ("a", "b", "c", "d") else None
