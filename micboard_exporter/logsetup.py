"""Logging: human-readable text or JSON lines, chosen by ``--log-format``."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

#: Attributes every LogRecord has; anything else passed through ``extra=`` is a structured field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """``2026-11-27T10:00:00.123Z INFO  poller: message key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a single line (exceptions follow on their own lines)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        name = record.name.removeprefix("micboard_exporter.")
        line = f"{stamp} {record.levelname:<5} {name}: {record.getMessage()}"
        extra = _fields(record)
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg and any structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a JSON line."""
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO; that is noise for an exporter polling hundreds of devices.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
