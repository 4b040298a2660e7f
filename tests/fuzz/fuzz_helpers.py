"""Shared pieces of the property tests: the Hypothesis settings and a strategy for cutting a stream.

Every property runs a bounded number of examples with no per-example deadline (a loaded CI machine must not
turn into a flaky "too slow" failure); the whole directory stays well under a minute. No example database
is written into the working tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from hypothesis import settings
from hypothesis import strategies as st

T = TypeVar("T", str, bytes)


def fuzz(max_examples: int) -> settings:
    """Settings for one property: ``max_examples`` runs, no deadline, no example database."""
    return settings(max_examples=max_examples, deadline=None, database=None)


@st.composite
def cut_points(draw: st.DrawFn, length: int, max_cuts: int = 16) -> list[int]:
    """Sorted, distinct positions strictly inside a stream of ``length`` items (where to split it)."""
    if length < 2:
        return []
    cuts = draw(st.lists(st.integers(min_value=1, max_value=length - 1), max_size=max_cuts, unique=True))
    return sorted(cuts)


def split_at(data: T, cuts: Sequence[int]) -> list[T]:
    """``data`` in pieces, cut at ``cuts`` (sorted positions inside it)."""
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
