"""A clock the tests hold: deadlines pass when the test says so, not when the wall clock does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from worker.clock import FrozenClock, use_clock

# A Monday morning: no route's time window makes the example city's decisions differ.
MONDAY_MORNING = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@contextmanager
def frozen(at: datetime = MONDAY_MORNING) -> Iterator[FrozenClock]:
    clock = FrozenClock(at)
    previous = use_clock(clock)
    try:
        yield clock
    finally:
        use_clock(previous)
