"""When the next attempt of a webhook is due: the published schedule, jitter and Retry-After.

Pure functions of their inputs (the caller passes the time and the random source), so the
table-driven tests need no clock and no server.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from worker.rules.durations import parse_duration

__all__ = ["next_attempt_at", "parse_duration", "parse_retry_after", "parse_schedule"]

# Retry-After further away than this is a misconfigured endpoint, not a plan.
RETRY_AFTER_CAP = timedelta(days=1)

# Jitter spreads retries over time; it keeps no secret, so a plain generator is right.
_JITTER = random.Random()  # noqa: S311


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """Comma- or space-separated durations as the rules write them: `0s,5s,5m,30m,2h,5h,10h`."""
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    if not parts:
        raise ValueError("the webhook schedule is empty; it needs at least one delay")
    return tuple(parse_duration(part) for part in parts)


def jittered(delay: timedelta, fraction: float, rng: random.Random) -> timedelta:
    """`delay` moved by up to ±`fraction` of itself, so retries of many deliveries spread out."""
    if fraction <= 0 or delay <= timedelta(0):
        return delay
    return delay * rng.uniform(1 - fraction, 1 + fraction)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """The moment a `Retry-After` header (seconds or an HTTP date) asks us to wait for.
    None when absent or unreadable; never further than RETRY_AFTER_CAP."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        until = now + timedelta(seconds=int(value))
    else:
        try:
            until = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
    return min(until, now + RETRY_AFTER_CAP)


def next_attempt_at(
    schedule: tuple[timedelta, ...],
    attempts_made: int,
    now: datetime,
    *,
    jitter: float = 0.0,
    retry_after: datetime | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When attempt `attempts_made + 1` is due, or None when the schedule is used up.

    `Retry-After` wins only when it is later than the schedule's own next slot.
    """
    if attempts_made >= len(schedule):
        return None
    slot = now + jittered(schedule[attempts_made], jitter, rng or _JITTER)
    if retry_after is not None and retry_after > slot:
        return retry_after
    return slot
