"""A session keeps its last failure to report it on the next poll; it must not keep the frames it came from."""

from __future__ import annotations

import gc
import weakref

import pytest

from micboard_exporter.errors import DeviceUnreachable, ProtocolError, kept


class _Buffer:
    """Stands in for what a failing read has in its locals (a receive buffer, a connection)."""


def _fail_while_holding(buffer: _Buffer) -> None:
    try:
        raise OSError(f"connection reset with {len(repr(buffer))} bytes read")
    except OSError as exc:
        raise DeviceUnreachable("rx1: connection reset") from exc


def test_a_kept_error_releases_the_frames_and_their_locals() -> None:
    buffer = _Buffer()
    alive = weakref.ref(buffer)
    try:
        _fail_while_holding(buffer)
    except DeviceUnreachable as exc:
        stored = kept(exc)
    del buffer
    gc.collect()
    assert alive() is None  # without kept(), the traceback's frames would still hold the buffer
    # What the next poll reports is unchanged: type, message and cause.
    assert isinstance(stored, DeviceUnreachable)
    assert str(stored) == "rx1: connection reset"
    assert isinstance(stored.__cause__, OSError)
    assert stored.__traceback__ is None and stored.__cause__.__traceback__ is None


def test_kept_handles_a_cycle_in_the_chain_and_returns_the_same_error() -> None:
    first, second = ProtocolError("a"), ProtocolError("b")
    first.__context__, second.__context__ = second, first
    assert kept(first) is first


def test_a_kept_error_can_still_be_raised_with_a_fresh_traceback() -> None:
    try:
        _fail_while_holding(_Buffer())
    except DeviceUnreachable as exc:
        stored = kept(exc)
    with pytest.raises(DeviceUnreachable, match="connection reset") as raised:
        raise stored
    assert raised.value.__traceback__ is not None
