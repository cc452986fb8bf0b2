"""The formulas, table by table; and the SQL held against them on the hand-built dataset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.support.metrics_dataset import seed
from worker.db.models import Case, Task
from worker.db.session import session_factory
from worker.metrics import queries
from worker.metrics.definitions import (
    GroupBy,
    bucket_label,
    bucket_starts,
    closed_by,
    closed_on_time,
    open_at,
    overdue_at,
    parse_moment,
    percentile,
    rate,
    responded_in_time,
)

T = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("numerator", "denominator", "value"),
    [(0, 0, None), (0, 4, 0.0), (3, 4, 0.75), (5, 5, 1.0)],
)
def test_rate(numerator: int, denominator: int, value: float | None) -> None:
    assert rate(numerator, denominator).value == value


@pytest.mark.parametrize(("numerator", "denominator"), [(1, 0), (-1, 3), (4, 3)])
def test_not_a_rate(numerator: int, denominator: int) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        rate(numerator, denominator)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.9, 7.0),
        ([3.0, 1.0, 2.0], 0.5, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([11.0, 20.0, 25.0], 0.9, 24.0),  # rank 1.8: 20 + 0.8 × 5
        ([10.0, 20.0], 0.0, 10.0),
        ([10.0, 20.0], 1.0, 20.0),
    ],
)
def test_percentile_interpolates_like_postgres(
    values: list[float], fraction: float, expected: float | None
) -> None:
    assert percentile(values, fraction) == expected


@pytest.mark.parametrize(
    ("acknowledged", "due", "as_of", "counts"),
    [
        (h(1), h(2), h(10), True),  # before the deadline
        (h(2), h(2), h(10), True),  # at it
        (h(3), h(2), h(10), False),  # after it
        (None, h(2), h(10), False),  # never
        (h(1), None, h(10), True),  # no deadline: acknowledged at all
        (h(1), h(2), h(0.5), False),  # after the window's end
    ],
)
def test_responded_in_time(
    acknowledged: datetime | None, due: datetime | None, as_of: datetime, counts: bool
) -> None:
    assert responded_in_time(acknowledged, due, as_of) is counts


@pytest.mark.parametrize(
    ("state", "closed_at", "as_of", "counts"),
    [
        ("closed", h(5), h(10), True),
        ("closed", h(11), h(10), False),  # closed after the window
        ("dispatched", h(5), h(10), False),  # closed once, reopened: not closed
        ("resolved", None, h(10), False),
        ("cancelled", None, h(10), False),
    ],
)
def test_closed_by(state: str, closed_at: datetime | None, as_of: datetime, counts: bool) -> None:
    assert closed_by(state, closed_at, as_of) is counts


@pytest.mark.parametrize(
    ("resolved", "due", "on_time"),
    [(h(5), h(6), True), (h(6), h(6), True), (h(7), h(6), False), (h(7), None, True)],
)
def test_closed_on_time(resolved: datetime, due: datetime | None, on_time: bool) -> None:
    assert closed_on_time(resolved, due) is on_time


@pytest.mark.parametrize(
    ("state", "received", "resolved", "as_of", "is_open"),
    [
        ("dispatched", h(0), None, h(10), True),
        ("in_progress", h(10), None, h(10), False),  # filed at the moment: not before it
        ("merged", h(0), None, h(10), False),
        ("cancelled", h(0), None, h(10), False),
        ("resolved", h(0), h(5), h(10), False),  # resolved by then
        ("closed", h(0), h(12), h(10), True),  # resolved after: open at the moment
        ("closed", h(0), None, h(10), False),
        ("dispatched", h(0), h(5), h(10), True),  # reopened: its old resolution is past
    ],
)
def test_open_at(
    state: str, received: datetime, resolved: datetime | None, as_of: datetime, is_open: bool
) -> None:
    assert open_at(state, received, resolved, as_of) is is_open


@pytest.mark.parametrize(
    ("state", "ack_due", "resolve_due", "overdue"),
    [
        ("dispatched", h(5), h(20), True),  # not acknowledged, past due
        ("accepted", h(5), h(20), False),  # acknowledged: the acknowledge deadline is done
        ("accepted", h(5), h(8), True),  # past the resolve deadline
        ("dispatched", None, None, False),
        ("triaged", None, None, False),
        ("dispatched", h(10), h(20), False),  # a deadline exactly now is not yet passed
    ],
)
def test_overdue_at(
    state: str, ack_due: datetime | None, resolve_due: datetime | None, overdue: bool
) -> None:
    assert overdue_at(state, ack_due, resolve_due, h(10)) is overdue


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2026-03-01T00:00:00+08:00", datetime(2026, 2, 28, 16, 0, tzinfo=UTC)),
        ("2026-03-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T00:00:00-05:00", datetime(2026, 3, 1, 5, 0, tzinfo=UTC)),
    ],
)
def test_parse_moment(text: str, moment: datetime) -> None:
    assert parse_moment(text, NOW) == moment


@pytest.mark.parametrize(
    ("text", "problem"),
    [("2026-03-01T00:00:00", "no UTC offset"), ("yesterday", "neither"), ("7y", "neither")],
)
def test_parse_moment_refuses(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_moment(text, NOW)


SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("since", "until", "by", "zone", "labels", "first_start"),
    [
        # Shanghai midnights are 16:00 UTC the day before
        (datetime(2026, 3, 1, 16, tzinfo=UTC), datetime(2026, 3, 3, 16, tzinfo=UTC),
         GroupBy.day, SHANGHAI, ["2026-03-02", "2026-03-03"], datetime(2026, 3, 1, 16, tzinfo=UTC)),
        # a window starting mid-day: its first bucket starts at that day's midnight
        (datetime(2026, 3, 2, 3, tzinfo=UTC), datetime(2026, 3, 2, 20, tzinfo=UTC),
         GroupBy.day, SHANGHAI, ["2026-03-02", "2026-03-03"], datetime(2026, 3, 1, 16, tzinfo=UTC)),
        # weeks start on Monday (ISO): Wednesday 4 March is in W10, Monday 9 March starts W11
        (datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC),
         GroupBy.week, SHANGHAI, ["2026-W10", "2026-W11"], datetime(2026, 3, 1, 16, tzinfo=UTC)),
        # Berlin moves its clocks on 29 March 2026: that day's midnight is 23:00 UTC before,
        # the next day's 22:00 UTC
        (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC),
         GroupBy.day, BERLIN, ["2026-03-29"], datetime(2026, 3, 28, 23, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_buckets(
    since: datetime,
    until: datetime,
    by: GroupBy,
    zone: ZoneInfo,
    labels: list[str],
    first_start: datetime,
) -> None:
    starts = bucket_starts(since, until, by, zone)
    assert [bucket_label(start, by, zone) for start in starts] == labels
    assert starts[0] == first_start


def test_a_day_across_a_clock_change_is_23_hours() -> None:
    since = datetime(2026, 3, 28, 23, tzinfo=UTC)
    starts = bucket_starts(since, since + timedelta(days=2), GroupBy.day, BERLIN)
    assert starts[1] - starts[0] == timedelta(hours=23)


def test_too_many_buckets() -> None:
    since = datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="more than 400 days"):
        bucket_starts(since, since + timedelta(days=500), GroupBy.day, SHANGHAI)


# The SQL against the formulas: the backlog at many moments, and the per-case predicates
# behind the window's counts, on every case of the dataset.

START = datetime(2026, 3, 2, tzinfo=SHANGHAI)


@pytest.mark.parametrize("hour", [-30, -15, 0, 6.5, 10, 20, 24, 26, 45, 48, 50, 60, 100])
def test_backlog_query_agrees_with_the_formulas(any_engine: Engine, hour: float) -> None:
    seed(any_engine, START)
    as_of = START + timedelta(hours=hour)
    window = queries.Window(START, as_of + timedelta(hours=1), None)
    with session_factory(any_engine)() as session:
        found = queries.backlog_at(session, window, as_of).get(None, (0, 0))
        cases = list(session.scalars(select(Case)))
    backlog = [c for c in cases if open_at(c.state, c.received_at, c.resolved_at, as_of)]
    overdue = [
        c for c in backlog if overdue_at(c.state, c.acknowledge_due_at, c.resolve_due_at, as_of)
    ]
    assert found == (len(backlog), len(overdue))


@pytest.mark.parametrize("hours", [12, 24, 30, 48, 72])
def test_window_queries_agree_with_the_formulas(any_engine: Engine, hours: float) -> None:
    seed(any_engine, START)
    until = START + timedelta(hours=hours)
    window = queries.Window(START, until, None)
    with session_factory(any_engine)() as session:
        counts = queries.case_counts(session, window)[None]
        responses = queries.response_counts(session, window)[None]
        cases = [c for c in session.scalars(select(Case)) if START <= c.received_at < until]
        ids = {c.id for c in cases}
        tasks = [
            t
            for t in session.scalars(select(Task).where(Task.role == "lead"))
            if t.case_id in ids and t.created_at <= until
        ]
    closed = [c for c in cases if closed_by(c.state, c.closed_at, until)]
    on_time = [c for c in closed if closed_on_time(c.resolved_at, c.resolve_due_at)]
    received = [c for c in cases if c.state != "merged"]
    cancelled = [c for c in cases if c.state == "cancelled"]
    assert counts == (len(received), len(cancelled), len(closed), len(on_time))
    responded = [
        t for t in tasks if responded_in_time(t.acknowledged_at, t.acknowledge_due_at, until)
    ]
    assert responses == (len(responded), len(tasks))
