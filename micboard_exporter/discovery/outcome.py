"""What one probe of one host found: a device, or the reason it found none.

Every probe returns an :class:`Attempt`. The reasons are what the summary adds up to explain an empty
result ("every host refused", "no route", "timed out"), so they are kept apart precisely rather than
folded into "not found".
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final


class Reason(enum.StrEnum):
    """Why a probe ended."""

    FOUND = "found"
    REFUSED = "refused"
    """The host is there but nothing listens on the port (TCP RST / ICMP port unreachable)."""
    TIMEOUT = "timeout"
    """No answer within the timeout: host off, probe or answer dropped by a firewall, or wrong address."""
    NO_ROUTE = "no route"
    """This machine has no path to the network (ENETUNREACH)."""
    HOST_UNREACHABLE = "host unreachable"
    """The router or the local segment says the host is not there (EHOSTUNREACH: no ARP answer)."""
    SILENT = "silent"
    """The port is open (TCP connected) but nothing answered: e.g. SLX-D with third-party control off."""
    GARBAGE = "garbage"
    """Something answered, but not in the protocol's framing: not counted as a device."""
    REJECTED = "rejected"
    """A well-formed answer that says no (``REP ERR``, HTTP error): something speaks the protocol, no identity."""
    ERROR = "error"
    """Any other local error (too many open files, permission); the detail says which."""


_ERRNO_REASONS: Final[Mapping[int, Reason]] = {
    errno.ECONNREFUSED: Reason.REFUSED,
    errno.ECONNRESET: Reason.REFUSED,
    errno.ENETUNREACH: Reason.NO_ROUTE,
    errno.EHOSTUNREACH: Reason.HOST_UNREACHABLE,
    errno.EHOSTDOWN: Reason.HOST_UNREACHABLE,
    errno.ETIMEDOUT: Reason.TIMEOUT,
}


def os_error(exc: BaseException) -> OSError | None:
    """The first ``OSError`` with an errno in ``exc``'s cause chain (anyio wraps the real one)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def reason_for(exc: BaseException) -> tuple[Reason, str]:
    """Map an exception from connecting or sending to a :class:`Reason` and a short detail."""
    found = os_error(exc)
    if found is None:
        if isinstance(exc, TimeoutError):
            return Reason.TIMEOUT, "timed out"
        return Reason.ERROR, str(exc) or type(exc).__name__
    reason = _ERRNO_REASONS.get(found.errno or 0, Reason.ERROR)
    return reason, found.strerror or str(found)


@dataclass(frozen=True)
class Found:
    """A device that answered in its protocol's framing with its identity."""

    host: str
    port: int
    protocol: str
    """Which probe found it: ``shure-tcp``, ``shure-udp``, ``sscv2``, ``ssc``, ``mcp``."""
    plugin: str
    model: str | None = None
    family: str | None = None
    channels: int | None = None
    name: str | None = None
    """The device's own name (Shure DEVICE_ID, Sennheiser device name), used for the suggested id."""
    evidence: str = ""
    """What it answered, short, for the comment next to the device in the fragment."""
    options: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    """Things the user has to do or know (password, certificate, an ambiguous model)."""


@dataclass(frozen=True)
class Attempt:
    """One probe of one host."""

    host: str
    protocol: str
    reason: Reason
    detail: str = ""
    found: Found | None = None
