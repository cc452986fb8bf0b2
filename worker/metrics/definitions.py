"""The supervisors' figures as pure formulas: no database, no clock.

Every figure is defined over a *cohort*: the cases filed in the window. What happened to them
is read as of the window's end. The README's "Metrics for supervisors" states each
definition in words; these functions are those words in code, and `queries.py` feeds them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class GroupBy(StrEnum):
    department = "department"
    category = "category"
    district = "district"
    day = "day"
    week = "week"

    @property
    def is_time(self) -> bool:
        return self in (GroupBy.day, GroupBy.week)


@dataclass(frozen=True)
class Rate:
    """A share with what it is made of, so that 0/0 reads as "no data", never as 0%."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator


def rate(numerator: int, denominator: int) -> Rate:
    if numerator < 0 or denominator < 0 or numerator > denominator:
        raise ValueError(f"not a rate: {numerator}/{denominator}")
    return Rate(numerator, denominator)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's `percentile_cont` does, so
    that the embedded SQLite store and PostgreSQL give the same figure for the same cases."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"percentile fraction {fraction} is not within 0..1")
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    share = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * share


def responded_in_time(
    acknowledged_at: datetime | None, acknowledge_due_at: datetime | None, as_of: datetime
) -> bool:
    """A lead task counts as responded to when it was acknowledged by the window's end and no
    later than its acknowledge deadline (a task without a deadline: acknowledged at all)."""
    if acknowledged_at is None or acknowledged_at > as_of:
        return False
    return acknowledge_due_at is None or acknowledged_at <= acknowledge_due_at


def closed_by(state: str, closed_at: datetime | None, as_of: datetime) -> bool:
    """Closed, and its last close happened by the window's end. A case closed, reopened and
    closed again is one closed case; one reopened and still open is not closed."""
    return state == "closed" and closed_at is not None and closed_at <= as_of


def closed_on_time(resolved_at: datetime | None, resolve_due_at: datetime | None) -> bool:
    """A closed case was on time when its final resolution came by its resolve deadline as it
    stood then (a reopened case is judged by its last round). No deadline: on time."""
    if resolved_at is None:
        return False
    return resolve_due_at is None or resolved_at <= resolve_due_at


def open_at(
    state: str, received_at: datetime, resolved_at: datetime | None, as_of: datetime
) -> bool:
    """In the backlog at `as_of`: filed before it, neither merged nor cancelled, and not yet
    resolved by then (a case resolved after `as_of` was still open at `as_of`)."""
    if received_at >= as_of or state in ("merged", "cancelled"):
        return False
    if state in ("resolved", "closed"):
        return resolved_at is not None and resolved_at > as_of
    return True


def overdue_at(
    state: str,
    acknowledge_due_at: datetime | None,
    resolve_due_at: datetime | None,
    as_of: datetime,
) -> bool:
    """Of the backlog: past its resolve deadline, or past its acknowledge deadline while still
    waiting for the lead department to acknowledge (state `dispatched`)."""
    if resolve_due_at is not None and resolve_due_at < as_of:
        return True
    return state == "dispatched" and acknowledge_due_at is not None and acknowledge_due_at < as_of


_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# The two forms a window's end may take, as the API's schema states them: `7d` (m, h, d, w),
# or an ISO 8601 time with its UTC offset (without one it would be ambiguous).
RELATIVE_PATTERN = r"[0-9]{1,7}[mhdw]"
ISO_PATTERN = (
    r"(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
MOMENT_PATTERN = f"^({RELATIVE_PATTERN}|{ISO_PATTERN})$"
_RELATIVE = re.compile(r"^([0-9]+)([mhdw])$")
_ISO = re.compile(f"^{ISO_PATTERN}$")
# Metrics count cases; none was filed before 1970 or after 2999, and the calendar arithmetic
# of days and weeks stays far from the ends of Python's dates.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def parse_moment(text: str, now: datetime) -> datetime:
    """`7d` (that long before `now`: m, h, d or w) or ISO 8601 with a UTC offset, e.g.
    `2026-03-01T00:00:00+08:00`, between 1970 and 2999."""
    relative = _RELATIVE.match(text)
    if relative:
        if len(relative.group(1)) > 7:
            raise ValueError(f"'{text}' has more digits than any window needs (at most 7)")
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        try:
            moment = now - timedelta(**{unit: amount})
        except OverflowError:
            moment = datetime.min.replace(tzinfo=UTC)
    else:
        moment = _iso_moment(text)
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"'{text}' is not between 1970 and 2999")
    return moment


def _iso_moment(text: str) -> datetime:
    if not _ISO.match(text):
        if re.match(r"^[0-9]{4}-", text) and not re.match(r"^(19[7-9]|2)", text):
            raise ValueError(f"'{text}' is not between 1970 and 2999")
        if _ISO.match(text + "Z"):
            raise ValueError(f"'{text}' has no UTC offset; add one, e.g. +08:00 or Z")
        raise ValueError(
            f"'{text}' is neither like 7d, 12h, 2w nor an ISO time such as 2026-03-01T00:00+08:00"
        )
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise ValueError(f"'{text}' is not a date on the calendar") from None


MAX_BUCKETS = 400


def bucket_starts(since: datetime, until: datetime, by: GroupBy, zone: ZoneInfo) -> list[datetime]:
    """The local midnights (days) or Monday midnights (weeks) in `zone` that start each bucket
    covering [since, until), as UTC instants; the first is at or before `since`. Midnights are
    found in local time, so a day across a daylight-saving change is 23 or 25 hours long."""
    if not by.is_time:
        raise ValueError(f"{by} is not a time grouping")
    first = since.astimezone(zone).date()
    if by is GroupBy.week:
        first -= timedelta(days=first.weekday())
    step = timedelta(days=7 if by is GroupBy.week else 1)
    starts: list[datetime] = []
    day = first
    while (start := _local_midnight(day, zone)) < until:
        starts.append(start)
        if len(starts) > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} {by.value}s; choose a shorter window")
        day += step
    return starts


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def bucket_label(start: datetime, by: GroupBy, zone: ZoneInfo) -> str:
    """`2026-03-02` for a day, `2026-W10` for an ISO week, in the zone's calendar."""
    local = start.astimezone(zone).date()
    if by is GroupBy.week:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.isoformat()
