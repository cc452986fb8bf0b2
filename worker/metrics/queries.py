"""The SQL behind the supervisors' figures: a few grouped counts over the window's cases.

Each query mirrors a formula of `definitions.py` (a test checks them against each other) and
returns plain counts per group key, so that `report.py` can assemble rows without caring
which store answered. The same statements run on PostgreSQL and on the embedded SQLite; only
the percentiles differ (PostgreSQL computes them, SQLite hands the durations over).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Null,
    Select,
    and_,
    case,
    func,
    null,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from worker.db.models import Callback, Case, Task
from worker.ledger.lifecycle import OPEN_CASE_STATES
from worker.metrics.definitions import GroupBy, percentile

Key = str | None
OPEN_STATES = sorted(state.value for state in OPEN_CASE_STATES)
DONE_STATES = ("resolved", "closed")


@dataclass(frozen=True)
class Window:
    """[since, until) and how to group; `bucket_starts` only for day and week."""

    since: datetime
    until: datetime
    by: GroupBy | None
    bucket_starts: Sequence[datetime] = ()


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _case_key(window: Window, cases: Any = Case) -> ColumnElement[Any]:
    """The group a case falls in: its lead department, category, district, or the index of
    its day or week (by received time); one group (null) for the totals."""
    if window.by is None:
        return null()
    if window.by.is_time:
        ends = [*window.bucket_starts[1:], window.until]
        return case(*((cases.received_at < end, index) for index, end in enumerate(ends)))
    column = {
        GroupBy.department: cases.lead_department,
        GroupBy.category: cases.category,
        GroupBy.district: cases.district,
    }[window.by]
    return column  # type: ignore[no-any-return]


def _in_window(window: Window, cases: Any = Case) -> ColumnElement[bool]:
    return and_(cases.received_at >= window.since, cases.received_at < window.until)


def _grouped(session: Session, query: Select[Any], key: ColumnElement[Any]) -> dict[Key, Any]:
    # The totals have no key to group by: one row over everything (counts of 0 when empty).
    if not isinstance(getattr(key, "element", key), Null):
        query = query.group_by(key)
    return {_key(row[0]): tuple(row[1:]) for row in session.execute(query) if row[1]}


def _key(value: Any) -> Key:
    return None if value is None else str(value)


def case_counts(session: Session, window: Window) -> dict[Key, tuple[int, int, int, int]]:
    """received (not merged), cancelled, closed by the window's end, of them closed on time."""
    key = _case_key(window).label("key")
    closed = and_(Case.state == "closed", Case.closed_at <= window.until)
    on_time = and_(
        closed,
        Case.resolved_at.is_not(None),
        or_(Case.resolve_due_at.is_(None), Case.resolved_at <= Case.resolve_due_at),
    )
    query = select(
        key,
        _count(Case.state != "merged"),
        _count(Case.state == "cancelled"),
        _count(closed),
        _count(on_time),
    ).where(_in_window(window))
    return _grouped(session, query, key)


def merged_counts(session: Session, window: Window) -> dict[Key, int]:
    """Duplicates filed in the window and folded into another case. By department they count
    for the department leading the case they were folded into (a duplicate is never routed)."""
    duplicate, kept = aliased(Case), aliased(Case)
    query = select(duplicate).where(_in_window(window, duplicate), duplicate.state == "merged")
    if window.by is GroupBy.department:
        key: ColumnElement[Any] = kept.lead_department.label("key")
        query = query.join(kept, kept.id == duplicate.merged_into_id, isouter=True)
    else:
        key = _case_key(window, duplicate).label("key")
    query = query.with_only_columns(key, func.count(), maintain_column_froms=True)
    return {key: int(count) for key, (count,) in _grouped(session, query, key).items()}


def response_counts(session: Session, window: Window) -> dict[Key, tuple[int, int]]:
    """Lead tasks dispatched by the window's end on the window's cases (every dispatch round
    counts), and of them those acknowledged by their acknowledge deadline. By department, a
    task counts for the department it was given to."""
    if window.by is GroupBy.department:
        key: ColumnElement[Any] = Task.department.label("key")
    else:
        key = _case_key(window).label("key")
    responded = and_(
        Task.acknowledged_at.is_not(None),
        Task.acknowledged_at <= window.until,
        or_(Task.acknowledge_due_at.is_(None), Task.acknowledged_at <= Task.acknowledge_due_at),
    )
    query = (
        select(key, _count(responded), func.count())
        .select_from(Task)
        .join(Case, Case.id == Task.case_id)
        .where(
            _in_window(window),
            Task.role == "lead",
            # A task is made after its case is filed: this bound lets an index on the tasks'
            # creation time skip every task older than the window.
            Task.created_at >= window.since,
            Task.created_at <= window.until,
        )
    )
    return _grouped(session, query, key)


def callback_counts(
    session: Session, window: Window
) -> dict[Key, tuple[int, int, int, int, int, int]]:
    """Callbacks recorded by the window's end on the window's cases: all of them, solved yes,
    solved answered, satisfied yes, satisfied answered, and no answer at all."""
    key = _case_key(window).label("key")
    query = (
        select(
            key,
            func.count(),
            _count(Callback.solved.is_(True)),
            _count(Callback.solved.is_not(None)),
            _count(Callback.satisfied.is_(True)),
            _count(Callback.satisfied.is_not(None)),
            _count(and_(Callback.solved.is_(None), Callback.satisfied.is_(None))),
        )
        .select_from(Callback)
        .join(Case, Case.id == Callback.case_id)
        .where(
            _in_window(window),
            # Recorded after the case was filed, like the tasks' bound above.
            Callback.recorded_at >= window.since,
            Callback.recorded_at <= window.until,
        )
    )
    return _grouped(session, query, key)


Durations = tuple[int, float | None, float | None]


def close_durations(session: Session, window: Window) -> tuple[dict[Key, Durations], Durations]:
    """Per group and over all: cases closed by the window's end, and the median and 90th
    percentile of their time from filing to the final close, in seconds."""
    closed = and_(_in_window(window), Case.state == "closed", Case.closed_at <= window.until)
    key = _case_key(window).label("key")
    if session.get_bind().dialect.name == "postgresql":
        return _durations_in_sql(session, key, closed)
    days = func.julianday(Case.closed_at) - func.julianday(Case.received_at)
    values: dict[Key, list[float]] = defaultdict(list)
    for group, value in session.execute(select(key, days * 86400.0).where(closed)):
        values[_key(group)].append(float(value))
    every = [value for found in values.values() for value in found]
    return {group: _durations(found) for group, found in values.items()}, _durations(every)


def _durations_in_sql(
    session: Session, key: ColumnElement[Any], closed: ColumnElement[bool]
) -> tuple[dict[Key, Durations], Durations]:
    # One sort per group gives both percentiles (an array of fractions), and grouping sets
    # give the groups and the total from one scan.
    seconds = func.extract("epoch", Case.closed_at - Case.received_at).label("seconds")
    rows = select(key, seconds).where(closed).subquery()
    both = func.percentile_cont(postgresql.array([0.5, 0.9])).within_group(rows.c.seconds)
    query = select(func.grouping(rows.c.key), rows.c.key, func.count(), both).group_by(
        func.grouping_sets(rows.c.key, tuple_())
    )
    # The sort is of every closed case's duration: in memory, not in temporary files (the
    # default 4 MB spills at about 40,000 cases). For this transaction only.
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    groups: dict[Key, Durations] = {}
    total: Durations = (0, None, None)
    for is_total, group, count, both in session.execute(query):
        median, p90 = both or (None, None)  # no closed case at all: no percentiles
        found = (int(count), median, p90)
        if is_total:
            total = found
        else:
            groups[_key(group)] = found
    return groups, total


def _durations(values: list[float]) -> Durations:
    return len(values), percentile(values, 0.5), percentile(values, 0.9)


def backlog_at(session: Session, window: Window, as_of: datetime) -> dict[Key, tuple[int, int]]:
    """Cases open at `as_of` (filed before it, not merged or cancelled, not yet resolved by
    then), and of them overdue. Not limited to the window's cases: the backlog is everything
    still open. Two parts, each answerable from an index: the cases open now, and the cases
    resolved since `as_of`."""
    key = null().label("key") if _is_time(window) else _case_key(window).label("key")
    columns = (key, Case.state, Case.acknowledge_due_at, Case.resolve_due_at)
    still_open = select(*columns).where(Case.state.in_(OPEN_STATES), Case.received_at < as_of)
    resolved_since = select(*columns).where(
        Case.state.in_(DONE_STATES), Case.resolved_at > as_of, Case.received_at < as_of
    )
    rows = union_all(still_open, resolved_since).subquery()
    overdue = or_(
        rows.c.resolve_due_at < as_of,
        and_(rows.c.state == "dispatched", rows.c.acknowledge_due_at < as_of),
    )
    grouped = window.by is not None and not _is_time(window)
    outer_key = rows.c.key if grouped else null()
    query = select(outer_key, func.count(), _count(overdue)).select_from(rows)
    return _grouped(session, query, outer_key)


def _is_time(window: Window) -> bool:
    return window.by is not None and window.by.is_time


__all__ = [
    "Key",
    "Window",
    "backlog_at",
    "callback_counts",
    "case_counts",
    "close_durations",
    "merged_counts",
    "response_counts",
]
