"""The figures from cases driven through the real stages: the columns the metric queries
read are the ones the department and close-loop stages write. A gas leak answered in time
and closed at the first callback; a burst pipe acknowledged late, reopened by an unhappy
citizen and closed at the second; one still waiting at the window's end."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from tests.support.journey import (
    BURST_PIPE,
    GAS_LEAK,
    MONDAY_MORNING,
    department,
    dispatched,
    frozen,
    on_task,
    step,
    task_of,
    task_row,
)
from worker.actions.department import accept, resolve
from worker.clock import FrozenClock
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.db.models import Case
from worker.db.session import session_factory
from worker.metrics.definitions import GroupBy
from worker.metrics.report import MetricsReport, build_report
from worker.rules import Ruleset, load_ruleset
from worker.stages.closeloop import record_feedback

RULES = Path(__file__).resolve().parents[2] / "routing_rules"
CALLER = Actor(kind=ActorKind.hotline, id="callback-desk")
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


def _work(engine: Engine, clock: FrozenClock, case_id: str, name: str, late: bool) -> None:
    """The department acknowledges just before (or after) its deadline, then resolves."""
    task_id = task_of(engine, case_id, name)
    due = task_row(engine, task_id).acknowledge_due_at
    assert due is not None
    clock.advance((due + (MINUTE if late else -MINUTE)) - clock.now())
    on_task(engine, task_id, lambda s, t: accept(s, t, department(name)))
    clock.advance(MINUTE)
    on_task(engine, task_id, lambda s, t: resolve(s, t, department(name), "done"))


def _answer(engine: Engine, case_id: str, ruleset: Ruleset, happy: bool) -> None:
    step(
        engine,
        lambda s: record_feedback(
            s, s.get_one(Case, case_id), CALLER, happy, happy, "", ruleset=ruleset
        ),
    )


def test_figures_from_cases_driven_through_the_stages(pg_engine: Engine, ruleset: Ruleset) -> None:
    with frozen(MONDAY_MORNING) as clock:
        gas = dispatched(pg_engine, ruleset, **GAS_LEAK)
        pipe = dispatched(pg_engine, ruleset, **BURST_PIPE)
        elsewhere = {"address": "江北大道 88 号", "latitude": 32.2, "longitude": 118.7}
        waiting = dispatched(pg_engine, ruleset, **BURST_PIPE, location=elsewhere)
        for name in ("gas", "fire"):
            _work(pg_engine, clock, gas, name, late=False)
        _answer(pg_engine, gas, ruleset, happy=True)
        _work(pg_engine, clock, pipe, "water", late=True)
        _answer(pg_engine, pipe, ruleset, happy=False)  # reopened to water, a new round
        _work(pg_engine, clock, pipe, "water", late=False)
        _answer(pg_engine, pipe, ruleset, happy=True)
        end = clock.now() + MINUTE
    with session_factory(pg_engine)() as session:
        report: MetricsReport = build_report(
            session, MONDAY_MORNING - MINUTE, end, GroupBy.department, ZoneInfo("UTC")
        )
        states = {case_id: session.get_one(Case, case_id).state for case_id in (gas, pipe, waiting)}
    assert states == {gas: "closed", pipe: "closed", waiting: "dispatched"}
    total = report.total
    assert (total.received, total.closed, total.backlog) == (3, 2, 1)
    # Lead tasks: gas in time, water late then in time on the reopened round, water waiting.
    assert (total.response_rate.numerator, total.response_rate.denominator) == (2, 4)
    assert (total.closure_rate.numerator, total.closure_rate.denominator) == (2, 3)
    assert (total.resolution_rate.numerator, total.resolution_rate.denominator) == (2, 3)
    assert (total.satisfaction_rate.numerator, total.satisfaction_rate.denominator) == (2, 3)
    assert total.callbacks == 3
    assert total.time_to_close.closed == 2
    rows = {row.key: row for row in report.groups}
    assert (rows["gas"].received, rows["gas"].closed) == (1, 1)
    assert (rows["water"].received, rows["water"].closed, rows["water"].backlog) == (2, 1, 1)
    assert (rows["water"].response_rate.numerator, rows["water"].response_rate.denominator) == (
        1,
        3,
    )
