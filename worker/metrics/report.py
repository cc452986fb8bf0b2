"""One metrics report: the window's figures per group and in total, as the API, the CLI and
the dashboard show them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from worker.config import get_settings
from worker.metrics import queries
from worker.metrics.definitions import GroupBy, Rate, bucket_label, bucket_starts, rate
from worker.metrics.queries import Key, Window
from worker.metrics.snapshot import run_all


class RateOut(BaseModel):
    numerator: int
    denominator: int
    value: float | None = Field(description="numerator / denominator; null when it is 0/0.")

    @classmethod
    def of(cls, share: Rate) -> RateOut:
        return cls(numerator=share.numerator, denominator=share.denominator, value=share.value)


class TimeToClose(BaseModel):
    closed: int = Field(description="Cases the figures are over (closed by the window's end).")
    median_seconds: float | None
    p90_seconds: float | None


class MetricsRow(BaseModel):
    key: str | None = Field(
        description="Department, category or district id (null: none yet, e.g. not routed), "
        "the day (2026-03-02) or ISO week (2026-W10); null in the total."
    )
    starts_at: datetime | None = Field(default=None, description="Day and week rows only.")
    ends_at: datetime | None = Field(default=None, description="Day and week rows only.")
    received: int = Field(description="Cases filed in the window, duplicates not included.")
    merged: int = Field(description="Duplicates filed in the window and folded into a case.")
    cancelled: int
    closed: int
    response_rate: RateOut
    closure_rate: RateOut
    on_time_closure_rate: RateOut
    resolution_rate: RateOut
    satisfaction_rate: RateOut
    callbacks: int = Field(description="Callbacks recorded, answered or not.")
    callbacks_unanswered: int = Field(description="Callbacks where the citizen gave no answer.")
    time_to_close: TimeToClose
    backlog: int = Field(description="Cases open at the row's end (the window's, or its day's).")
    overdue: int = Field(description="Of the backlog, past a deadline at that moment.")


class MetricsReport(BaseModel):
    since: datetime
    until: datetime
    by: GroupBy
    time_zone: str
    groups: list[MetricsRow]
    total: MetricsRow


def build_report(
    session: Session, since: datetime, until: datetime, by: GroupBy, zone: ZoneInfo
) -> MetricsReport:
    if until <= since:
        raise ValueError(f"the window ends ({until.isoformat()}) before it starts")
    starts = bucket_starts(since, until, by, zone) if by.is_time else []
    window = Window(since, until, by, starts)
    figures = _Figures(session, window)
    if by.is_time:
        rows = [_time_row(session, figures, window, index, zone) for index in range(len(starts))]
    else:
        rows = [figures.row(key, figures.backlog.get(key, (0, 0))) for key in figures.group_keys()]
        rows.sort(key=lambda row: (-row.received, row.key or ""))
    backlog = (rows[-1].backlog, rows[-1].overdue) if by.is_time and rows else None
    total = figures.total(backlog)
    return MetricsReport(
        since=since, until=until, by=by, time_zone=zone.key, groups=rows, total=total
    )


class _Figures:
    """Every query's answer for one window, keyed by group."""

    def __init__(self, session: Session, window: Window) -> None:
        jobs: dict[str, Callable[[Session], Any]] = {
            "cases": partial(queries.case_counts, window=window),
            "merged": partial(queries.merged_counts, window=window),
            "responses": partial(queries.response_counts, window=window),
            "callbacks": partial(queries.callback_counts, window=window),
            "durations": partial(queries.close_durations, window=window),
        }
        if not (window.by is not None and window.by.is_time):
            jobs["backlog"] = partial(queries.backlog_at, window=window, as_of=window.until)
        answers = run_all(session, jobs, get_settings().metrics_parallel_queries)
        self.cases, self.merged = answers["cases"], answers["merged"]
        self.responses, self.callbacks = answers["responses"], answers["callbacks"]
        self.durations, self.all_durations = answers["durations"]
        self.backlog = answers.get("backlog", {})

    def total(self, backlog: tuple[int, int] | None) -> MetricsRow:
        """The whole window's row. Every count is the sum of the groups' (each case, task and
        callback is in exactly one group); only the percentiles need a query of their own."""
        summed = object.__new__(_Figures)
        summed.cases = _summed(self.cases)
        summed.merged = {None: sum(self.merged.values())}
        summed.responses = _summed(self.responses)
        summed.callbacks = _summed(self.callbacks)
        summed.durations = {None: self.all_durations}
        at_end = _summed(self.backlog).get(None, (0, 0)) if backlog is None else backlog
        return summed.row(None, (at_end[0], at_end[1]))

    def group_keys(self) -> list[Key]:
        found: list[dict[Key, Any]] = [
            self.cases,
            self.merged,
            self.responses,
            self.callbacks,
            self.backlog,
        ]
        return list(dict.fromkeys(key for answer in found for key in answer))

    def row(self, key: Key, backlog: tuple[int, int], label: Key | None = None) -> MetricsRow:
        received, cancelled, closed, on_time = self.cases.get(key, (0, 0, 0, 0))
        responded, dispatched = self.responses.get(key, (0, 0))
        calls, solved, solved_of, satisfied, satisfied_of, silent = self.callbacks.get(
            key, (0, 0, 0, 0, 0, 0)
        )
        count, median, p90 = self.durations.get(key) or (0, None, None)
        return MetricsRow(
            key=key if label is None else label,
            received=received,
            merged=self.merged.get(key, 0),
            cancelled=cancelled,
            closed=closed,
            response_rate=RateOut.of(rate(responded, dispatched)),
            closure_rate=RateOut.of(rate(closed, received - cancelled)),
            on_time_closure_rate=RateOut.of(rate(on_time, closed)),
            resolution_rate=RateOut.of(rate(solved, solved_of)),
            satisfaction_rate=RateOut.of(rate(satisfied, satisfied_of)),
            callbacks=calls,
            callbacks_unanswered=silent,
            time_to_close=TimeToClose(closed=count, median_seconds=median, p90_seconds=p90),
            backlog=backlog[0],
            overdue=backlog[1],
        )


def _summed(answer: dict[Key, Any]) -> dict[Key, Any]:
    columns = zip(*answer.values(), strict=True)
    return {None: tuple(sum(column) for column in columns)} if answer else {}


def _time_row(
    session: Session, figures: _Figures, window: Window, index: int, zone: ZoneInfo
) -> MetricsRow:
    assert window.by is not None
    starts = window.bucket_starts
    start = max(starts[index], window.since)
    end = min(starts[index + 1], window.until) if index + 1 < len(starts) else window.until
    backlog = queries.backlog_at(session, window, end).get(None, (0, 0))
    label = bucket_label(starts[index], window.by, zone)
    row = figures.row(str(index), backlog, label=label)
    return row.model_copy(update={"starts_at": start, "ends_at": end})
