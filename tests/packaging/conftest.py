"""Fixtures of the packaging suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from packaging_helpers import JsonDevice, serve_device


@pytest.fixture
def json_device() -> Iterator[JsonDevice]:
    """A running example device (see :mod:`packaging_helpers`)."""
    with serve_device() as device:
        yield device
