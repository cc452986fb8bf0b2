"""Time, in one place, so that tests can move it (deadlines, escalation, callback windows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The wall clock in UTC. Tests replace it with a `FrozenClock` they can advance."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock(Clock):
    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def advance(self, by: timedelta) -> None:
        self._at += by


_clock: Clock = Clock()


def now() -> datetime:
    return _clock.now()


def use_clock(clock: Clock) -> Clock:
    """Install `clock` as the process clock; returns the previous one so it can be put back."""
    global _clock
    previous, _clock = _clock, clock
    return previous
