"""``micboard-exporter import-micboard``: turn a Micboard / Wirelessboard ``config.json`` into our YAML config.

Micboard's file (its ``docs/configuration.md``) lists one *slot* per wireless channel::

    {"slots": [{"slot": 1, "ip": "192.0.2.11", "channel": 1, "type": "qlxd",
                "extended_id": "H01", "extended_name": "Dave"}, ...],
     "groups": [{"group": 1, "title": "Band", "slots": [1, 2, 0, 3]}]}

We write one ``shure`` device per receiver address with the Micboard ``type`` as the ``family`` option, the
slot and the performer name per channel, and the group title as a ``group`` label. ``offline`` slots are
Micboard placeholders without a receiver: they have no telemetry, so they become comments in the output.
Everything that cannot be carried over is reported with its slot number; malformed input is an error that
names the slot, and nothing is written. The output is checked with the real config loader before it is
written, so what we write always passes ``check-config``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from micboard_exporter.errors import ConfigErrors
from micboard_exporter.plugins.shure.codec import Family, model_info

__all__ = ["Flow", "ImportResult", "MicboardImportError", "add_parser", "convert", "dump_devices", "run"]

#: Micboard ``type`` → our shure ``family``. Micboard and Wirelessboard know the first five (ref §3.1: WB
#: config.py still lists uhfr, qlxd, ulxd, axtd, p10t); ``slxd`` comes from the s0600204 fork.
MICBOARD_TYPES: Final[Mapping[str, Family]] = {
    "ulxd": Family.ULXD,
    "qlxd": Family.QLXD,
    "axtd": Family.AXTD,
    "uhfr": Family.UHFR,
    "p10t": Family.P10T,
    "slxd": Family.SLXD,
}
OFFLINE: Final = "offline"

# The largest model of each family sets the channel range; taken from the plugin's model table so the two
# never disagree.
_LARGEST_MODEL: Final[Mapping[Family, str]] = {
    Family.ULXD: "ULXD4Q", Family.QLXD: "QLXD4", Family.AXTD: "AD4Q", Family.UHFR: "UR4D",
    Family.P10T: "P10T", Family.SLXD: "SLXD4Q",
}
_SLOT_KEYS: Final = frozenset({"slot", "ip", "type", "channel", "extended_id", "extended_name"})
# Keys Micboard keeps at the top level for its own web UI; they have no meaning for an exporter.
_MICBOARD_UI_KEYS: Final = frozenset({"port", "prefixes", "displays", "local_url", "background-folder", "uuid",
                                      "config_path", "slots", "groups"})
_SMART_QUOTES: Final = "\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b\u00ab\u00bb"
_SMART_QUOTE_ADVICE: Final = (
    "straight double quote \". This happens when the file was edited in a word processor or pasted from a web "
    "page or chat. Replace every \u201c \u201d \u2018 \u2019 around keys and values with \" (use a plain-text "
    "editor, or turn off 'smart quotes'), then run the import again"
)
_HOSTNAME: Final = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$")
_MAX_NAME: Final = 128
_MAX_SLOT: Final = 9999


def max_channels(family: Family) -> int:
    """Highest channel number a receiver of ``family`` can have."""
    info = model_info(_LARGEST_MODEL[family])
    assert info is not None  # the table above names models the codec knows
    return info.channels


class MicboardImportError(Exception):
    """The Micboard file cannot be converted; ``problems`` lists every reason, each naming the slot."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


@dataclass
class _Channel:
    slot: int
    name: str | None


@dataclass
class _Receiver:
    host: str
    family: Family
    channels: dict[int, _Channel] = field(default_factory=dict)

    @property
    def first_slot(self) -> int:
        return min(ch.slot for ch in self.channels.values())


@dataclass(frozen=True)
class ImportResult:
    """The YAML text and what could not be carried over (one line each, naming the slot)."""

    text: str
    devices: int
    channels: int
    offline: int
    notes: tuple[str, ...]


# --------------------------------------------------------------------------------------------- reading


def _json_error_message(text: str, exc: json.JSONDecodeError) -> str:
    where = f"line {exc.lineno}, column {exc.colno}"
    line = text.splitlines()[exc.lineno - 1] if 0 < exc.lineno <= len(text.splitlines()) else ""
    smart = next((ch for ch in text[max(0, exc.pos - 1) : exc.pos + 2] if ch in _SMART_QUOTES), None)
    if smart is None:
        smart = next((ch for ch in line if ch in _SMART_QUOTES), None)
    if smart is not None:
        return (
            f"invalid JSON at {where}: typographic quote {smart!r} (U+{ord(smart):04X}) where JSON needs a "
            + _SMART_QUOTE_ADVICE
        )
    hint = ""
    before = text[: exc.pos].rstrip()
    if before.endswith(",") and exc.msg.startswith(("Expecting property name", "Expecting value")):
        hint = " (a trailing comma before a closing } or ]? JSON does not allow one)"
    return f"invalid JSON at {where}: {exc.msg}{hint}"


def _parse(source: str, raw: bytes) -> Any:
    try:
        # utf-8-sig: files saved by Windows editors often start with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MicboardImportError(source, [f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MicboardImportError(source, [_json_error_message(text, exc)]) from None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()
    return True


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _slot_label(index: int, item: Any) -> str:
    slot = _int(item.get("slot")) if isinstance(item, dict) else None
    return f"slots[{index}] (slot {slot})" if slot is not None else f"slots[{index}]"


def _clean(text: str) -> str:
    """A name safe for a YAML comment and a label: control characters become spaces."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _performer(item: Mapping[str, Any]) -> str | None:
    """Micboard shows ``extended_id`` and ``extended_name`` together ("H01 Dave"); so do we."""
    parts = [_clean(str(item[k])) for k in ("extended_id", "extended_name") if isinstance(item.get(k), str)]
    name = " ".join(p for p in parts if p)
    return name or None


# --------------------------------------------------------------------------------------------- convert


def convert(source: str, raw: bytes) -> ImportResult:
    """Convert Micboard ``config.json`` bytes read from ``source``; :class:`MicboardImportError` lists every problem."""
    doc = _parse(source, raw)
    if not isinstance(doc, dict):
        raise MicboardImportError(source, ["the top level must be a JSON object with a \"slots\" list"])
    slots = doc.get("slots")
    if not isinstance(slots, list):
        raise MicboardImportError(source, ["no \"slots\" list: is this a Micboard or Wirelessboard config.json?"])
    problems: list[str] = []
    notes: list[str] = []
    receivers: dict[str, _Receiver] = {}
    offline: list[tuple[int, str | None]] = []
    seen_slots: dict[int, int] = {}
    for index, item in enumerate(slots):
        where = _slot_label(index, item)
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object like {{\"slot\": 1, \"ip\": ..., \"type\": ...}}")
            continue
        slot = _int(item.get("slot"))
        if slot is None or not 1 <= slot <= _MAX_SLOT:
            problems.append(f"{where}: \"slot\" must be a whole number 1-{_MAX_SLOT}, got {item.get('slot')!r}")
            continue
        if slot in seen_slots:
            problems.append(f"{where}: duplicate slot number {slot} (also slots[{seen_slots[slot]}])")
            continue
        seen_slots[slot] = index
        kind = item.get("type")
        if kind == OFFLINE:
            offline.append((slot, _performer(item)))
            continue
        if not isinstance(kind, str) or kind not in MICBOARD_TYPES:
            problems.append(f"{where}: unknown type {kind!r}; Micboard types are "
                            f"{', '.join([*MICBOARD_TYPES, OFFLINE])}")
            continue
        family = MICBOARD_TYPES[kind]
        host = item.get("ip")
        if not isinstance(host, str) or not _valid_host(host.strip()):
            problems.append(f"{where}: \"ip\" {host!r} is not an IP address or host name")
            continue
        host = host.strip()
        channel = _int(item.get("channel"))
        top = max_channels(family)
        if channel is None or not 1 <= channel <= top:
            problems.append(f"{where}: channel {item.get('channel')!r} is out of range for type {kind} "
                            f"(1-{top}{', the largest model ' + _LARGEST_MODEL[family] if top > 1 else ''})")
            continue
        receiver = receivers.get(host)
        if receiver is None:
            receiver = receivers[host] = _Receiver(host, family)
        elif receiver.family is not family:
            first = min(ch.slot for ch in receiver.channels.values())
            problems.append(f"{where}: {host} is type {kind} here but {receiver.family.value} in slot {first}; "
                            "one address is one receiver")
            continue
        if channel in receiver.channels:
            other = receiver.channels[channel].slot
            notes.append(f"slot {slot}: {host} channel {channel} is already slot {other}; a channel has one place "
                         f"on the wall board, so slot {slot} is not carried over")
            continue
        name = _performer(item)
        if name is not None and len(name) > _MAX_NAME:
            notes.append(f"slot {slot}: name shortened to {_MAX_NAME} characters")
            name = name[:_MAX_NAME]
        receiver.channels[channel] = _Channel(slot, name)
        for key in sorted(set(item) - _SLOT_KEYS):
            notes.append(f"slot {slot}: key {key!r} (the exporter config has no equivalent)")
    groups = _groups(doc.get("groups"), seen_slots, problems, notes)
    if problems:
        raise MicboardImportError(source, problems)
    extra = sorted(set(doc) - _MICBOARD_UI_KEYS)
    if extra:
        notes.append(f"top-level keys not carried over: {', '.join(extra)}")
    ordered = sorted(receivers.values(), key=lambda r: r.first_slot)
    labels = _device_groups(ordered, groups, notes)
    text = _render(source, ordered, labels, offline)
    return ImportResult(text=text, devices=len(ordered), channels=sum(len(r.channels) for r in ordered),
                        offline=len(offline), notes=tuple(notes))


def _groups(raw: Any, known: Mapping[int, int], problems: list[str], notes: list[str]) -> list[tuple[str, set[int]]]:
    """``(title, slots)`` per Micboard group, in group-number order."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append("\"groups\" must be a list")
        return []
    out: list[tuple[int, str, set[int]]] = []
    for i, group in enumerate(raw):
        if not isinstance(group, dict) or not isinstance(group.get("slots", []), list):
            problems.append(f"groups[{i}]: expected an object with \"title\" and a \"slots\" list")
            continue
        number = _int(group.get("group"))
        title = _clean(str(group.get("title") or "")) or f"group {number if number is not None else i + 1}"
        members: set[int] = set()
        for slot in group.get("slots", []):
            value = _int(slot)
            if value is None or value <= 0:
                continue  # Micboard's BLANK boxes fill unused places on a display; nothing to carry over
            if value not in known:
                notes.append(f"slot {value}: listed in group {title!r} but not defined in \"slots\"; ignored")
                continue
            members.add(value)
        out.append((number if number is not None else i + 1, title, members))
    return [(title, members) for _, title, members in sorted(out, key=lambda g: g[0])]


def _device_groups(receivers: Sequence[_Receiver], groups: Sequence[tuple[str, set[int]]],
                   notes: list[str]) -> list[str | None]:
    """The ``group`` label of each receiver: a label is per device, so one group per receiver."""
    labels: list[str | None] = []
    for receiver in receivers:
        slots = {ch.slot for ch in receiver.channels.values()}
        matching = [(title, members & slots) for title, members in groups if members & slots]
        if not matching:
            labels.append(None)
            continue
        chosen = matching[0][0]
        labels.append(chosen)
        for title, members in matching[1:]:
            for slot in sorted(members):
                notes.append(f"slot {slot}: also in group {title!r}, but {receiver.host} carries one group "
                             f"label ({chosen!r}); filter on slots in Grafana for the other group")
    return labels


# --------------------------------------------------------------------------------------------- writing


class Flow(dict[str, Any]):
    """A small mapping written on one line (``{slot: 1, name: Dave}``) so a channel reads as one row."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes :class:`Flow` mappings in flow style."""


_Dumper.add_representer(
    Flow, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)
)


def dump_devices(devices: Sequence[Mapping[str, Any]]) -> str:
    """``devices:`` as block YAML with labels, options and channel entries on one line each."""
    return yaml.dump({"devices": list(devices)}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def device_id(family: Family, host: str) -> str:
    """A stable id from the family and the address: ``ulxd-192-0-2-14``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", host).strip("-").lower()
    return f"{family.value}-{slug}"[:64]


def _render(source: str, receivers: Sequence[_Receiver], labels: Sequence[str | None],
            offline: Sequence[tuple[int, str | None]]) -> str:
    lines = [
        f"# Imported from the Micboard config {Path(source).name} by `micboard-exporter import-micboard`.",
        "# One device per receiver address; `slot` and `name` per channel come from Micboard's slots and",
        "# extended names. Check it with `micboard-exporter check-config FILE` (see docs/getting-started.md).",
    ]
    devices: list[dict[str, Any]] = []
    used: set[str] = set()
    for receiver, group in zip(receivers, labels, strict=True):
        dev_id = device_id(receiver.family, receiver.host)
        while dev_id in used:  # two host names that slug the same way
            dev_id = f"{dev_id[:60]}-{len(used)}"
        used.add(dev_id)
        entry: dict[str, Any] = {"id": dev_id, "plugin": "shure", "host": receiver.host}
        if group is not None:
            entry["labels"] = Flow(group=group)
        entry["options"] = Flow(family=receiver.family.value)
        entry["channels"] = {
            number: (Flow(slot=ch.slot, name=ch.name) if ch.name else Flow(slot=ch.slot))
            for number, ch in sorted(receiver.channels.items())
        }
        devices.append(entry)
    body = dump_devices(devices)
    if not devices:
        body = "devices: []\n"
    lines.append(body.rstrip("\n"))
    if offline:
        lines += [
            "",
            "# Offline slots: Micboard placeholders with no receiver behind them. They have no telemetry, so",
            "# nothing polls them; add a device here when the receiver is installed.",
        ]
        for slot, name in sorted(offline):
            lines.append(f"#   slot {slot}: offline" + (f" ({name})" if name else ""))
    return "\n".join(lines) + "\n"


def check_output(text: str, source: str) -> None:
    """Validate ``text`` with the real loader and installed plugins; :class:`ConfigErrors` if it fails."""
    from micboard_exporter.config import parse_config
    from micboard_exporter.registry import PluginRegistry

    parse_config(source, text, PluginRegistry.discover(), environ={})


# --------------------------------------------------------------------------------------------- command


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Define ``import-micboard``."""
    parser = subparsers.add_parser(
        "import-micboard",
        help="convert a Micboard / Wirelessboard config.json into an exporter config",
        description="Read a Micboard or Wirelessboard config.json and write an exporter config: one shure "
                    "device per receiver address, slots and extended names per channel, groups as a "
                    "'group' label. What cannot be carried over is listed on stderr with its slot number.",
    )
    parser.add_argument("file", metavar="CONFIG_JSON", help="Micboard's config.json (e.g. "
                        "~/.local/share/micboard/config.json on Linux)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the YAML config to FILE instead of standard output")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``import-micboard``: 0 written, 1 the input or the output file is the problem."""
    source = str(args.file)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        _err(f"import-micboard: cannot read {source}: {exc.strerror}")
        return 1
    try:
        result = convert(source, raw)
    except MicboardImportError as exc:
        count = len(exc.problems)
        _err(f"import-micboard: {source}: cannot convert ({count} problem{'s' if count != 1 else ''}):")
        for problem in exc.problems:
            _err(f"  {problem}")
        return 1
    target = args.output
    try:
        check_output(result.text, target or "<stdout>")
    except ConfigErrors as exc:  # a bug on our side: never write a file the exporter would refuse
        _err("import-micboard: the converted config does not pass the exporter's check (please report):")
        for err in exc.errors:
            _err(f"  {err}")
        return 1
    for note in result.notes:
        _err(f"import-micboard: not carried over: {note}")
    if target is None:
        sys.stdout.write(result.text)
    else:
        try:
            # Mode "x" refuses an existing file atomically; --force truncates it.
            with Path(target).open("w" if args.force else "x", encoding="utf-8") as fh:
                fh.write(result.text)
        except FileExistsError:
            _err(f"import-micboard: {target} exists; use --force to overwrite it")
            return 1
        except OSError as exc:
            _err(f"import-micboard: cannot write {target}: {exc.strerror}")
            return 1
    summary = (f"import-micboard: {result.devices} receiver{'s' if result.devices != 1 else ''}, "
               f"{result.channels} channel{'s' if result.channels != 1 else ''}"
               + (f", {result.offline} offline slot{'s' if result.offline != 1 else ''} kept as comments"
                  if result.offline else "")
               + (f" written to {target}" if target else ""))
    _err(summary)
    return 0
