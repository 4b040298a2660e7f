"""Durations as written in the config: ``500ms``, ``5s``, ``2m``, ``1h30m`` (Prometheus style), or ``0``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
#: JSON Schema pattern for a duration string (used in config.schema.json and plugins' options schemas).
DURATION_PATTERN = r"^(0|((\d+(\.\d+)?)(ms|s|m|h|d))+)$"


def parse_duration(text: str) -> float:
    """Parse a duration into seconds; raise ``ValueError`` with a readable reason when it is malformed."""
    value = text.strip()
    if value == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(
            f"{text!r} is not a duration; write a number with a unit: ms, s, m, h or d (e.g. 500ms, 5s, 2m, 1h30m)"
        )
    return total


def format_duration(seconds: float) -> str:
    """Render seconds the way the config writes them (``1.5s``, ``250ms``, ``2m``)."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
