"""Closing the loop: the citizen's answer closes or reopens; silence closes after the window;
a supervisor reopens. A reopened case goes to the same departments, one escalation level up,
with fresh deadlines of the rules' length."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from tests.support.journey import (
    GAS_LEAK,
    RULES,
    actions,
    case_of,
    deliveries,
    department,
    dispatched,
    event_count,
    frozen,
    last_event,
    on_task,
    step,
    task_of,
)
from worker.actions.department import accept, resolve, return_task
from worker.actions.supervision import reassign
from worker.clock import FrozenClock
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind, CaseState, TaskState
from worker.db.models import Callback, Case, Task
from worker.db.session import session_factory
from worker.ledger.audit import verify
from worker.ops.reconcile import reconcile
from worker.rules import Ruleset, load_ruleset
from worker.stages.closeloop import NO_ANSWER, NotNow, auto_close, record_feedback, reopen

HOTLINE = Actor(kind=ActorKind.hotline, id="hotline-desk-3")
SUPERVISOR = Actor(kind=ActorKind.supervisor, id="shift-supervisor")
WINDOW = timedelta(hours=48)


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    with frozen() as frozen_clock:
        yield frozen_clock


def _work_done(engine: Engine, case_id: str, *departments: str) -> None:
    for name in departments:
        task_id = task_of(engine, case_id, name)
        on_task(engine, task_id, lambda s, t, who=name: accept(s, t, department(who)))
        on_task(engine, task_id, lambda s, t, who=name: resolve(s, t, department(who), "done"))


@pytest.fixture
def resolved(pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock) -> str:
    """A gas leak both gas (lead) and fire (assisting) resolved."""
    case_id = dispatched(pg_engine, ruleset, **GAS_LEAK)
    clock.advance(timedelta(minutes=30))
    _work_done(pg_engine, case_id, "gas", "fire")
    assert case_of(pg_engine, case_id).state == CaseState.resolved
    return case_id


def _feedback(
    engine: Engine, ruleset: Ruleset, case_id: str, solved: bool, satisfied: bool, comment: str = ""
) -> Callback:
    return step(
        engine,
        lambda s: record_feedback(
            s, s.get_one(Case, case_id), HOTLINE, solved, satisfied, comment, ruleset=ruleset
        ),
    )


def _callbacks(engine: Engine, case_id: str) -> list[tuple[bool | None, bool | None, str]]:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(Callback.solved, Callback.satisfied, Callback.outcome)
            .where(Callback.case_id == case_id)
            .order_by(Callback.id)
        )
        return [(a, b, c) for a, b, c in rows]


def _tasks(engine: Engine, case_id: str, round_no: int) -> list[tuple[str, str, str]]:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(Task.department, Task.role, Task.state)
            .where(Task.case_id == case_id, Task.dispatch_round == round_no)
            .order_by(Task.role.desc(), Task.department)
        )
        return [(d, r, s) for d, r, s in rows]


def test_solved_and_satisfied_closes_the_case(
    pg_engine: Engine, ruleset: Ruleset, resolved: str, clock: FrozenClock
) -> None:
    clock.advance(timedelta(hours=3))
    _feedback(pg_engine, ruleset, resolved, True, True, "很满意")
    case = case_of(pg_engine, resolved)
    assert case.state == CaseState.closed
    assert case.closed_at == clock.now()
    assert case.close_reason == "citizen satisfied"
    assert _callbacks(pg_engine, resolved) == [(True, True, "closed")]
    assert actions(pg_engine, resolved)[-2:] == ["callback.recorded", "case.closed"]
    assert last_event(pg_engine, resolved, "callback.recorded")["comment"] == "很满意"
    assert verify(pg_engine).ok


@pytest.mark.parametrize(("solved", "satisfied"), [(False, False), (True, False), (False, True)])
def test_anything_else_reopens_it_to_the_same_departments_one_level_up(
    pg_engine: Engine,
    ruleset: Ruleset,
    resolved: str,
    clock: FrozenClock,
    solved: bool,
    satisfied: bool,
) -> None:
    clock.advance(timedelta(hours=5))
    _feedback(pg_engine, ruleset, resolved, solved, satisfied, "还是有味道")
    case = case_of(pg_engine, resolved)
    assert case.state == CaseState.dispatched
    assert (case.dispatch_round, case.reopen_count, case.escalation_level) == (2, 1, 1)
    assert (case.resolved_at, case.callback_due_at, case.closed_at) == (None, None, None)
    # The gas leak route's deadlines (15 min, 2 h), counted from the reopening.
    assert case.acknowledge_due_at == clock.now() + timedelta(minutes=15)
    assert case.resolve_due_at == clock.now() + timedelta(hours=2)
    assert _tasks(pg_engine, resolved, 2) == [
        ("gas", "lead", "assigned"),
        ("fire", "assisting", "assigned"),
    ]
    assert _callbacks(pg_engine, resolved) == [(solved, satisfied, "reopened")]
    assert actions(pg_engine, resolved)[-2:] == ["callback.recorded", "case.reopened"]
    reopened = last_event(pg_engine, resolved, "case.reopened")
    assert (reopened["lead"], reopened["assisting"], reopened["round"]) == ("gas", ["fire"], 2)
    assert deliveries(pg_engine, resolved)[-2:] in (
        [("gas", "case.reopened"), ("fire", "task.assigned")],
        [("fire", "task.assigned"), ("gas", "case.reopened")],
    )
    assert verify(pg_engine).ok


def test_a_reopened_case_is_complete_for_reconcile(
    pg_engine: Engine, ruleset: Ruleset, resolved: str, clock: FrozenClock
) -> None:
    _feedback(pg_engine, ruleset, resolved, False, False)
    clock.advance(timedelta(minutes=5))
    with session_factory(pg_engine)() as session:
        report = reconcile(session)
    assert report.tasks_without_delivery == []
    assert report.cases_without_lead_task == []


def test_a_reopened_case_goes_round_the_loop_again(
    pg_engine: Engine, ruleset: Ruleset, resolved: str, clock: FrozenClock
) -> None:
    _feedback(pg_engine, ruleset, resolved, False, False)
    clock.advance(timedelta(hours=1))
    _work_done(pg_engine, resolved, "gas", "fire")
    assert case_of(pg_engine, resolved).state == CaseState.resolved
    _feedback(pg_engine, ruleset, resolved, True, True)
    case = case_of(pg_engine, resolved)
    assert (case.state, case.escalation_level) == (CaseState.closed, 1)
    assert [o for _, _, o in _callbacks(pg_engine, resolved)] == ["reopened", "closed"]


def test_feedback_before_the_case_is_resolved_is_refused(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset, **GAS_LEAK)
    before = event_count(pg_engine, case_id)
    with pytest.raises(NotNow, match="'dispatched'"):
        _feedback(pg_engine, ruleset, case_id, True, True)
    assert event_count(pg_engine, case_id) == before
    assert _callbacks(pg_engine, case_id) == []


def test_no_answer_within_the_window_closes_the_case(
    pg_engine: Engine, ruleset: Ruleset, resolved: str, clock: FrozenClock
) -> None:
    answered = dispatched(pg_engine, ruleset, **GAS_LEAK)
    _work_done(pg_engine, answered, "gas", "fire")
    _feedback(pg_engine, ruleset, answered, False, False)

    clock.advance(WINDOW - timedelta(seconds=1))
    assert step(pg_engine, lambda s: auto_close(s, clock.now())) == 0
    assert case_of(pg_engine, resolved).state == CaseState.resolved

    clock.advance(timedelta(seconds=1))
    assert step(pg_engine, lambda s: auto_close(s, clock.now())) == 1
    case = case_of(pg_engine, resolved)
    assert (case.state, case.close_reason, case.closed_at) == (
        CaseState.closed,
        NO_ANSWER,
        clock.now(),
    )
    assert _callbacks(pg_engine, resolved) == [(None, None, "no_answer")]
    assert actions(pg_engine, resolved)[-2:] == ["callback.recorded", "case.closed"]
    assert case_of(pg_engine, answered).state == CaseState.dispatched
    assert step(pg_engine, lambda s: auto_close(s, clock.now())) == 0
    assert verify(pg_engine).ok


def test_a_supervisor_reopens_a_closed_case(
    pg_engine: Engine, ruleset: Ruleset, resolved: str, clock: FrozenClock
) -> None:
    _feedback(pg_engine, ruleset, resolved, True, True)
    clock.advance(timedelta(days=3))
    step(
        pg_engine,
        lambda s: reopen(
            s, s.get_one(Case, resolved), SUPERVISOR, "leak again per inspection", ruleset=ruleset
        ),
    )
    case = case_of(pg_engine, resolved)
    assert (case.state, case.escalation_level, case.reopen_count) == (CaseState.dispatched, 1, 1)
    assert case.close_reason is None
    assert [(d, r) for d, r, _ in _tasks(pg_engine, resolved, 2)] == [
        ("gas", "lead"),
        ("fire", "assisting"),
    ]
    event = last_event(pg_engine, resolved, "case.reopened")
    assert event["reason"] == "leak again per inspection"
    assert ("gas", "case.reopened") in deliveries(pg_engine, resolved)


def test_only_a_resolved_or_closed_case_can_be_reopened(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset, **GAS_LEAK)
    with pytest.raises(NotNow, match="only a resolved or closed case"):
        step(
            pg_engine,
            lambda s: reopen(s, s.get_one(Case, case_id), SUPERVISOR, "why", ruleset=ruleset),
        )
    assert case_of(pg_engine, case_id).dispatch_round == 1


def test_a_returned_assisting_department_is_not_asked_again(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset, **GAS_LEAK)
    fire = task_of(pg_engine, case_id, "fire")
    on_task(pg_engine, fire, lambda s, t: return_task(s, t, department("fire"), "no fire"))
    _work_done(pg_engine, case_id, "gas")
    _feedback(pg_engine, ruleset, case_id, False, True)
    assert _tasks(pg_engine, case_id, 2) == [("gas", "lead", TaskState.assigned.value)]


def test_a_reopening_after_a_reassignment_goes_to_the_new_lead_and_the_old_helpers(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset, **GAS_LEAK)
    step(
        pg_engine,
        lambda s: reassign(
            s, case_id, department="emergency", reason="x", actor=SUPERVISOR, ruleset=ruleset
        ),
    )
    _work_done(pg_engine, case_id, "emergency", "fire")
    _feedback(pg_engine, ruleset, case_id, True, False)
    case = case_of(pg_engine, case_id)
    assert _tasks(pg_engine, case_id, case.dispatch_round) == [
        ("emergency", "lead", "assigned"),
        ("fire", "assisting", "assigned"),
    ]
