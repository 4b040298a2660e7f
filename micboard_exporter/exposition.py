"""Fast Prometheus text rendering of device state.

The scrape path does no per-sample work: the state store keeps, per device, one rendered text chunk per
metric family (:func:`render_device`), rebuilt only when that device's state changes. A scrape
(:func:`render_families`) writes each family's HELP/TYPE once, then joins the devices' chunks for it, so
samples stay grouped by family as the exposition format requires. No timestamps are written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from micboard_exporter.catalogue import CATALOGUE, FAMILY_INDEX, AntennaValues, ChannelValue, Level
from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import POLL_ERROR_REASONS
from micboard_exporter.model import ChannelSnapshot, DeviceSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HEADERS: Final[tuple[bytes, ...]] = tuple(
    f"# HELP {spec.name} {spec.help}\n# TYPE {spec.name} {spec.type}\n".encode() for spec in CATALOGUE
)
_CHANNEL_VALUE_FAMILIES: Final[tuple[tuple[int, str, ChannelValue], ...]] = tuple(
    (i, spec.name + "{", spec.value)
    for i, spec in enumerate(CATALOGUE)
    if spec.level is Level.CHANNEL and spec.value is not None
)
_ANTENNA_FAMILIES: Final[tuple[tuple[int, str, AntennaValues], ...]] = tuple(
    (i, spec.name + "{", spec.antenna_values)
    for i, spec in enumerate(CATALOGUE)
    if spec.level is Level.ANTENNA and spec.antenna_values is not None
)
_UP = FAMILY_INDEX["micboard_device_up"]
_INFO = FAMILY_INDEX["micboard_device_info"]
_LAST = FAMILY_INDEX["micboard_device_last_success_timestamp_seconds"]
_ERRORS = FAMILY_INDEX["micboard_poll_errors_total"]
_EVENTS = FAMILY_INDEX["micboard_events_total"]
_CH_INFO = FAMILY_INDEX["micboard_channel_info"]
_TX_INFO = FAMILY_INDEX["micboard_transmitter_info"]
FAMILY_COUNT: Final[int] = len(CATALOGUE)
LAST_SUCCESS_FAMILY: Final[int] = _LAST


def escape_label_value(value: str) -> str:
    """Escape a label value per the text exposition format: backslash, double quote and line feed."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(value: float | int | bool) -> str:
    """A sample value as the exposition format writes it (``+Inf``, ``NaN``, integers without ``.0``)."""
    kind = type(value)
    if kind is float:
        if -math.inf < value < math.inf:  # the common case first: this runs for every sample rendered
            return repr(value)
        if value != value:
            return "NaN"
        return "+Inf" if value > 0 else "-Inf"
    if kind is bool:
        return "1" if value else "0"
    return str(int(value))


@dataclass(slots=True)
class DeviceView:
    """What :func:`render_device` needs to know about one device."""

    config: DeviceConfig
    up: bool = False
    snapshot: DeviceSnapshot | None = None
    last_success: float | None = None
    """Unix time of the last successful poll."""
    errors: Mapping[str, int] = field(default_factory=dict)
    events: Mapping[str, int] = field(default_factory=dict)


def device_label_prefix(config: DeviceConfig) -> str:
    """``device="x",room="y"``: the labels every series of the device starts with."""
    parts = [f'device="{escape_label_value(config.id)}"']
    parts.extend(f'{k}="{escape_label_value(v)}"' for k, v in sorted(config.labels.items()))
    return ",".join(parts)


def render_last_success(prefix: str, last_success: float | None) -> bytes:
    """The freshness family chunk alone (it changes on every poll; the rest often does not)."""
    if last_success is None:
        return b""
    return f"micboard_device_last_success_timestamp_seconds{{{prefix}}} {format_value(last_success)}\n".encode()


def _render_channel(chunks: list[list[str]], cprefix: str, ch: ChannelSnapshot, cfg: DeviceConfig) -> None:
    override = cfg.channels.get(ch.number)
    slot = "" if override is None or override.slot is None else str(override.slot)
    performer = "" if override is None or override.name is None else override.name
    chunks[_CH_INFO].append(
        f'micboard_channel_info{{{cprefix},name="{escape_label_value(ch.name or "")}",'
        f'slot="{slot}",performer="{escape_label_value(performer)}"}} 1\n'
    )
    tx = ch.transmitter
    if tx is not None:
        chunks[_TX_INFO].append(
            f'micboard_transmitter_info{{{cprefix},model="{escape_label_value(tx.model or "")}",'
            f'battery_type="{escape_label_value(tx.battery_type or "")}"}} 1\n'
        )
    labels = cprefix + "} "
    for index, opening, get in _CHANNEL_VALUE_FAMILIES:
        value = get(ch)
        if value is not None:
            chunks[index].append(opening + labels + format_value(value) + "\n")
    for index, opening, get_all in _ANTENNA_FAMILIES:
        per_antenna = get_all(ch)
        for antenna in sorted(per_antenna):
            chunks[index].append(
                f'{opening}{cprefix},antenna="{escape_label_value(antenna)}"}} {format_value(per_antenna[antenna])}\n'
            )


def render_device(view: DeviceView, prefix: str | None = None) -> list[bytes]:
    """One UTF-8 chunk per catalogue family for this device (empty where it has no samples).

    Chunks are bytes so a scrape only joins them: no per-scrape encoding of megabytes of text."""
    cfg = view.config
    prefix = prefix if prefix is not None else device_label_prefix(cfg)
    chunks: list[list[str]] = [[] for _ in range(FAMILY_COUNT)]
    chunks[_UP].append(f"micboard_device_up{{{prefix}}} {'1' if view.up else '0'}\n")
    snap = view.snapshot
    if snap is not None:
        info = (
            ("manufacturer", snap.manufacturer), ("model", snap.model), ("firmware", snap.firmware),
            ("serial", snap.serial), ("host", snap.host or cfg.host),
        )
        labels = ",".join(f'{k}="{escape_label_value(v or "")}"' for k, v in info)
        chunks[_INFO].append(f"micboard_device_info{{{prefix},{labels}}} 1\n")
    for reason in POLL_ERROR_REASONS:
        count = view.errors.get(reason, 0)  # a single lookup, safe while the loop updates the dict
        chunks[_ERRORS].append(f'micboard_poll_errors_total{{{prefix},reason="{reason}"}} {count}\n')
    # dict() copies atomically under the GIL: the event loop may count an event while a scrape renders.
    for event, count in sorted(dict(view.events).items()):
        chunks[_EVENTS].append(f'micboard_events_total{{{prefix},event="{event}"}} {count}\n')
    if view.up and snap is not None:
        for ch in snap.channels:
            _render_channel(chunks, f'{prefix},channel="{ch.number}"', ch, cfg)
    out = ["".join(c).encode() for c in chunks]
    out[_LAST] = render_last_success(prefix, view.last_success)
    return out


def render_families(devices: Iterable[Sequence[bytes]], freshness: Sequence[bytes] | None = None) -> bytes:
    """The device part of a scrape as one buffer (see :func:`family_parts`)."""
    return b"".join(family_parts(devices, freshness))


def family_parts(devices: Iterable[Sequence[bytes]], freshness: Sequence[bytes] | None = None) -> list[bytes]:
    """The device part of a scrape, in order: every family's header, then each device's chunk for it.

    Returned as parts so the server can write them with scatter/gather I/O instead of copying tens of
    megabytes into one buffer. ``freshness``, when given, replaces the devices' last-success chunks (one per
    device, same order): the store keeps that chunk apart because it changes on every poll."""
    blocks = list(devices)
    parts: list[bytes] = []
    for index in range(FAMILY_COUNT):
        parts.append(_HEADERS[index])
        if index == _LAST and freshness is not None:
            parts.extend(freshness)
        else:
            parts.extend(block[index] for block in blocks)
    return parts
