"""Pure codec for Sennheiser Sound Control Protocol v1 (JSON over UDP 45), as EW-DX speaks it in Legacy mode.

No I/O, no clock, no logging. Sources: ``sennheiser-protocols.md`` §2 — Sennheiser's SSC developer's guides
for EW-DX [EWDX-SSC], SpeechLine DW [SLDW-SSC] and ew D1 [D1-SSC] win over client code where they differ.

Addresses are OSC-like paths mapped to nested JSON (``/mates/tx1/battery/gauge`` ⇔
``{"mates":{"tx1":{"battery":{"gauge":…}}}}``). A get sends the tree with ``null`` leaves; the answer has
the same shape with values. Errors come under ``osc.error``, either for the whole message
(``[400, {"desc": …}]``) or per address (a tree whose leaves are ``[code, {"desc": …}]`` or ``[code]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

DEFAULT_PORT: Final = 45

#: Error codes (SLDW-SSC p.83-84): the ones the plugin acts on.
SUBSCRIPTION_TERMINATES: Final = 310
MESSAGE_NOT_UNDERSTOOD: Final = 400
ADDRESS_NOT_FOUND: Final = 404
FAILED_DEPENDENCY: Final = 424  # EW-DX: transmitter not present / no valid data
ANSWER_TOO_LONG: Final = 450


class MalformedMessage(ValueError):
    """A datagram that is not one JSON object."""


class _Absent(Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


#: The device said the address has no value now (424 failed dependency, 404 not on this model).
ABSENT: Final = _Absent.ABSENT


def _merge_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The SLDW guide's own example repeats "osc" in one object ({"osc":{"xid":…},"osc":{"state":…}}):
    # merge repeated object members instead of silently keeping only the last.
    result: dict[str, Any] = {}
    for key, value in pairs:
        old = result.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            result[key] = {**old, **value}
        else:
            result[key] = value
    return result


def decode(datagram: bytes) -> dict[str, Any]:
    """One datagram → object. Trailing CR, LF, NUL and blanks are tolerated (devices differ, §2.2)."""
    text = datagram.decode("latin-1").rstrip("\r\n\0 \t")
    try:
        obj = json.loads(text, object_pairs_hook=_merge_pairs)
    except ValueError as exc:
        raise MalformedMessage(f"not JSON ({exc}): {text[:60]!r}") from exc
    except RecursionError:
        raise MalformedMessage(f"JSON nested too deeply: {text[:60]!r}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"not a JSON object: {text[:60]!r}")
    return obj


def encode(tree: Mapping[str, Any]) -> bytes:
    """A message as compact JSON with no terminator (EW-DX accepts bare datagrams)."""
    return json.dumps(tree, separators=(",", ":")).encode("latin-1")


def split_path(path: str) -> list[str]:
    """``/mates/tx1/battery/gauge`` → ``["mates", "tx1", "battery", "gauge"]``."""
    return [p for p in path.split("/") if p]


def tree(paths: Iterable[str], value: Any = None) -> dict[str, Any]:
    """Nested request tree with ``value`` (``null`` for a get) at each path."""
    root: dict[str, Any] = {}
    for path in paths:
        parts = split_path(path)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


def get_request(paths: Iterable[str]) -> bytes:
    """A get of every path: the tree with ``null`` leaves."""
    return encode(tree(paths))


def chunk_paths(paths: list[str], max_bytes: int, reply_bytes_per_leaf: int = 48) -> list[list[str]]:
    """Split a get so each answer fits a datagram.

    The answer is the request with values for ``null``; budget each leaf's value at
    ``reply_bytes_per_leaf`` (names ≤ 18 characters, warning arrays, numbers). The device answers 450 if a
    reply still does not fit, and the session then halves the chunk.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    for path in paths:
        candidate = [*current, path]
        if current and len(get_request(candidate)) + reply_bytes_per_leaf * len(candidate) > max_bytes:
            chunks.append(current)
            candidate = [path]
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def leaves(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a message to ``{path: value}``; ``osc`` (meta) is left out."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        if not prefix and key == "osc":
            continue
        path = f"{prefix}/{key}"
        if isinstance(value, dict) and value:
            flat.update(leaves(value, path))
        else:
            flat[path] = value
    return flat


@dataclass(frozen=True, slots=True)
class SscError:
    """An error code with its optional description."""

    code: int
    desc: str | None = None


def _as_error(value: Any) -> SscError | None:
    if isinstance(value, list) and value and isinstance(value[0], int) and not isinstance(value[0], bool):
        desc = value[1].get("desc") if len(value) > 1 and isinstance(value[1], dict) else None
        return SscError(code=value[0], desc=desc if isinstance(desc, str) else None)
    return None


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded datagram: values by path, per-address errors and a whole-message error."""

    values: dict[str, Any]
    errors: dict[str, SscError] = field(default_factory=dict)
    message_error: SscError | None = None
    subscribe_ack: bool = False

    @property
    def paths(self) -> set[str]:
        """Every address this message says something about."""
        return set(self.values) | set(self.errors)


def parse_message(obj: Mapping[str, Any]) -> Message:
    """Values, per-address errors (``{"osc":{"error":[{tree}]}}``) and whole-message errors (``[400, …]``)."""
    values = leaves(obj)
    errors: dict[str, SscError] = {}
    message_error: SscError | None = None
    osc = obj.get("osc")
    subscribe_ack = False
    if isinstance(osc, dict):
        raw = osc.get("error")
        whole = _as_error(raw)
        if whole is not None:
            message_error = whole
        elif isinstance(raw, list):
            for item in raw:
                if isinstance(item, dict):
                    for path, leaf in leaves(item).items():
                        err = _as_error(leaf)
                        if err is not None:
                            errors[path] = err
        state = osc.get("state")
        subscribe_ack = isinstance(state, dict) and "subscribe" in state
    return Message(values=values, errors=errors, message_error=message_error, subscribe_ack=subscribe_ack)


def subscribe_request(paths: Iterable[str], *, lifetime: int, cancel: bool = False) -> bytes:
    """``/osc/state/subscribe`` with the ``#`` parameters first in the element (as [SE] notes it must be).

    Parameters as in the EW-DX guide's example: ``min``/``max`` 0 (on change only), ``count`` 1000.
    """
    params: dict[str, Any] = {"min": 0, "max": 0, "count": 1000, "lifetime": lifetime}
    if cancel:
        params = {"cancel": True}
    element: dict[str, Any] = {"#": params}
    element.update(tree(paths))
    return encode({"osc": {"state": {"subscribe": [element]}}})


# --------------------------------------------------------------------------------------------------
# EW-DX addresses (§2.6; 1-based here, N = 1..2 on EM 2, 1..4 on EM 4)
# --------------------------------------------------------------------------------------------------

IDENTITY_PATHS: Final = ("/device/identity/product", "/device/identity/serial", "/device/identity/version")


def receiver_paths(n: int) -> tuple[str, ...]:
    """Receiver channel ``n`` settings and warnings."""
    return (f"/rx{n}/name", f"/rx{n}/frequency", f"/rx{n}/mute", f"/rx{n}/warnings")


def transmitter_paths(n: int) -> tuple[str, ...]:
    """Transmitter linked to channel ``n``; each answers 424 when none is present."""
    base = f"/mates/tx{n}"
    return (f"{base}/battery/gauge", f"{base}/battery/lifetime", f"{base}/battery/type", f"{base}/warnings",
            f"{base}/type", f"{base}/mute")


def meter_paths(n: int) -> tuple[str, ...]:
    """Meters of channel ``n`` (subscribe-only on some firmware, §2.3)."""
    return (f"/m/rx{n}/rssi", f"/m/rx{n}/rsqi", f"/m/rx{n}/divi", f"/m/rx{n}/af")


#: ``/mates/txN/battery/type`` → the model's short code ("Battery" is the BA 70 Li-ion pack, inferred).
BATTERY_TYPES: Final = {"Battery": "LION", "Primary Cell": "PRIMARY"}


def number(value: Any) -> float | None:
    """A JSON number as float; anything else (``ABSENT``, strings, bools) is unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def text(value: Any) -> str | None:
    """A non-blank string, else unknown."""
    return value if isinstance(value, str) and value.strip() else None


def warnings(value: Any) -> frozenset[str] | None:
    """A warnings array, else unknown."""
    return frozenset(w for w in value if isinstance(w, str)) if isinstance(value, list) else None


def frequency_hz(value: Any) -> float | None:
    """``/rxN/frequency`` is integer kHz (e.g. 546400) → Hz."""
    khz = number(value)
    return khz * 1000.0 if khz is not None and khz > 0 else None


def battery_runtime_s(kind: Any, lifetime: Any) -> float | None:
    """``/mates/txN/battery/lifetime`` is **minutes** on EW-DX (§2.6) → seconds; only for the BA 70.

    (SpeechLine DW's ``bat_lifetime`` is seconds per its guide; that is a different address.)
    """
    minutes = number(lifetime)
    if kind != "Battery" or minutes is None or minutes < 0:
        return None
    return minutes * 60.0


def diversity(value: Any) -> dict[str, bool] | None:
    """``/m/rxN/divi`` 0/1/2 = none / antenna A / antenna B."""
    v = number(value)
    if v not in (0.0, 1.0, 2.0):
        return None
    return {"a": v == 1.0, "b": v == 2.0}
