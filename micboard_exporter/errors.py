"""The one error tree of micboard-exporter.

::

    MicboardError
     ├── ConfigError            a config file (or reload) was rejected: file, path, reason
     ├── PluginLoadError        a plugin entry point failed to import or is not a Plugin
     └── PollError              one device poll failed; ``reason`` labels micboard_poll_errors_total
          ├── DeviceTimeout      no answer within the deadline          (transient: retried)
          ├── DeviceUnreachable  refused, reset, no route, DNS failure  (transient: retried)
          ├── ProtocolError      the device answered something we cannot use (not retried)
          └── AuthError          the device refused our credentials     (not retried)

Plugins raise only ``PollError`` subclasses from ``poll()``; the poller retries by ``transient`` and
counts by ``reason``. Anything else escaping a plugin is a bug in that plugin: the poller records it as
``reason="internal"`` and keeps going.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

_E = TypeVar("_E", bound=BaseException)


class MicboardError(Exception):
    """Base of every error raised on purpose by micboard-exporter."""


class ConfigError(MicboardError):
    """A configuration problem, always naming where it is and why.

    ``file`` is the path of the config file, ``path`` the location inside it in the form
    ``devices[3].host`` (empty for whole-file problems), ``reason`` a sentence for a human.
    """

    def __init__(self, file: str, path: str, reason: str) -> None:
        self.file = file
        self.path = path
        self.reason = reason
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {reason}")


class ConfigErrors(MicboardError):
    """Several config problems found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class PluginLoadError(MicboardError):
    """A plugin could not be loaded from its entry point."""


class PollError(MicboardError):
    """A device poll failed. Subclasses set ``reason`` and ``transient``."""

    reason: ClassVar[str] = "error"
    transient: ClassVar[bool] = False


class DeviceTimeout(PollError):
    """The device did not answer within the deadline."""

    reason = "timeout"
    transient = True


class DeviceUnreachable(PollError):
    """The device could not be reached (refused, reset, no route, name not resolved)."""

    reason = "unreachable"
    transient = True


class ProtocolError(PollError):
    """The device answered, but with something we cannot parse or use."""

    reason = "protocol"


class AuthError(PollError):
    """The device rejected our credentials or requires ones we do not have."""

    reason = "auth"


#: Every ``reason`` label value micboard_poll_errors_total can carry (pre-initialised at zero).
POLL_ERROR_REASONS: tuple[str, ...] = ("timeout", "unreachable", "protocol", "auth", "internal")


def kept(error: _E) -> _E:
    """``error`` made fit to be kept after it was handled (a session's last failure): the tracebacks of it and
    of its causes are dropped. A traceback holds every frame it passed through, and each frame its locals
    (buffers, connections), for as long as the error is kept; message, type and causes stay."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return error
