"""The department stage: the case follows its lead task; assisting tasks hold the resolution
until they end; a lead's return re-dispatches elsewhere; every action is idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from tests.support.journey import (
    ELEVATOR,
    GAS_LEAK,
    RULES,
    actions,
    case_of,
    count,
    deliveries,
    delivery_details,
    department,
    dispatched,
    event_count,
    frozen,
    last_event,
    on_task,
    redispatch,
    step,
    task_of,
    task_row,
)
from worker.actions.department import accept, report_progress, resolve, return_task
from worker.actions.supervision import reassign
from worker.clock import FrozenClock
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind, CaseState, TaskState
from worker.db.models import OutboxMessage, Task
from worker.db.session import session_factory
from worker.idempotency import Key, KeyReused
from worker.ledger.audit import timeline, verify
from worker.ledger.lifecycle import TransitionRefused
from worker.rules import Ruleset, load_ruleset
from worker.tasks.names import DISPATCH

SUPERVISOR = Actor(kind=ActorKind.supervisor, id="shift-supervisor")


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    with frozen() as frozen_clock:
        yield frozen_clock


@pytest.fixture
def gas_leak(pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock) -> str:
    """Dispatched to gas (lead) with fire assisting."""
    return dispatched(pg_engine, ruleset, **GAS_LEAK)


def _accept(engine: Engine, task_id: str, who: str) -> None:
    on_task(engine, task_id, lambda s, t: accept(s, t, department(who)))


def _resolve(engine: Engine, task_id: str, who: str, note: str = "fixed") -> None:
    on_task(engine, task_id, lambda s, t: resolve(s, t, department(who), note))


def _progress(engine: Engine, task_id: str, who: str, note: str, key: str | None = None) -> None:
    scoped = Key(f"token:{who}", key) if key else None
    on_task(
        engine,
        task_id,
        lambda s, t: report_progress(s, t, department(who), note, [], idempotency_key=scoped),
    )


def _return(engine: Engine, task_id: str, who: str, reason: str = "not ours") -> None:
    on_task(engine, task_id, lambda s, t: return_task(s, t, department(who), reason))


def test_the_lead_accepting_accepts_the_case_once(
    pg_engine: Engine, gas_leak: str, clock: FrozenClock
) -> None:
    lead = task_of(pg_engine, gas_leak, "gas")
    clock.advance(timedelta(minutes=3))
    _accept(pg_engine, lead, "gas")
    task = task_row(pg_engine, lead)
    assert task.state == TaskState.accepted
    assert task.acknowledged_at == clock.now()
    assert case_of(pg_engine, gas_leak).state == CaseState.accepted
    assert actions(pg_engine, gas_leak)[-2:] == ["task.accepted", "case.accepted"]

    before = event_count(pg_engine, gas_leak)
    clock.advance(timedelta(minutes=1))
    _accept(pg_engine, lead, "gas")
    assert event_count(pg_engine, gas_leak) == before
    assert task_row(pg_engine, lead).acknowledged_at == task.acknowledged_at


def test_an_assisting_department_accepting_leaves_the_case_alone(
    pg_engine: Engine, gas_leak: str
) -> None:
    _accept(pg_engine, task_of(pg_engine, gas_leak, "fire"), "fire")
    assert case_of(pg_engine, gas_leak).state == CaseState.dispatched
    assert actions(pg_engine, gas_leak)[-1] == "task.accepted"


def test_the_leads_first_progress_starts_the_case_and_repeats_are_skipped(
    pg_engine: Engine, gas_leak: str
) -> None:
    lead = task_of(pg_engine, gas_leak, "gas")
    _accept(pg_engine, lead, "gas")
    _progress(pg_engine, lead, "gas", "valve closed, crew on site")
    assert task_row(pg_engine, lead).state == TaskState.in_progress
    assert case_of(pg_engine, gas_leak).state == CaseState.in_progress
    assert last_event(pg_engine, gas_leak, "task.in_progress")["note"] == (
        "valve closed, crew on site"
    )

    before = event_count(pg_engine, gas_leak)
    _progress(pg_engine, lead, "gas", "valve closed, crew on site")
    assert event_count(pg_engine, gas_leak) == before

    _progress(pg_engine, lead, "gas", "pipe replaced")
    assert actions(pg_engine, gas_leak)[-1] == "task.progress"
    assert case_of(pg_engine, gas_leak).state == CaseState.in_progress


def test_progress_with_an_idempotency_key_is_recorded_once(
    pg_engine: Engine, gas_leak: str
) -> None:
    lead = task_of(pg_engine, gas_leak, "gas")
    _accept(pg_engine, lead, "gas")
    _progress(pg_engine, lead, "gas", "on our way", key="k-1")
    after_first = event_count(pg_engine, gas_leak)
    _progress(pg_engine, lead, "gas", "on our way", key="k-1")  # a retry
    assert event_count(pg_engine, gas_leak) == after_first
    with pytest.raises(KeyReused):  # the same key for another report
        _progress(pg_engine, lead, "gas", "on our way (retried)", key="k-1")
    assert event_count(pg_engine, gas_leak) == after_first
    # A new key is a new report, even when it says the same thing.
    _progress(pg_engine, lead, "gas", "on our way", key="k-2")
    assert event_count(pg_engine, gas_leak) == after_first + 1
    assert last_event(pg_engine, gas_leak, "task.progress")["idempotency_key"] == "k-2"


def test_progress_before_accepting_is_refused(pg_engine: Engine, gas_leak: str) -> None:
    lead = task_of(pg_engine, gas_leak, "gas")
    with pytest.raises(TransitionRefused) as refused:
        _progress(pg_engine, lead, "gas", "started")
    assert (refused.value.current, refused.value.requested) == ("assigned", "in_progress")
    assert task_row(pg_engine, lead).state == TaskState.assigned


def test_the_case_is_resolved_when_the_last_assisting_task_is_done(
    pg_engine: Engine, gas_leak: str, clock: FrozenClock
) -> None:
    lead, fire = task_of(pg_engine, gas_leak, "gas"), task_of(pg_engine, gas_leak, "fire")
    _accept(pg_engine, lead, "gas")
    _accept(pg_engine, fire, "fire")
    _resolve(pg_engine, lead, "gas")
    assert case_of(pg_engine, gas_leak).state == CaseState.accepted

    clock.advance(timedelta(minutes=40))
    _resolve(pg_engine, fire, "fire", "area made safe")
    case = case_of(pg_engine, gas_leak)
    assert case.state == CaseState.resolved
    assert case.resolved_at == clock.now()
    assert case.callback_due_at == clock.now() + timedelta(hours=48)
    assert actions(pg_engine, gas_leak)[-2:] == ["task.resolved", "case.resolved"]

    before = event_count(pg_engine, gas_leak)
    _resolve(pg_engine, fire, "fire", "area made safe")
    _resolve(pg_engine, lead, "gas")
    assert event_count(pg_engine, gas_leak) == before
    assert verify(pg_engine).ok


def test_an_assisting_return_after_the_lead_resolved_resolves_the_case(
    pg_engine: Engine, gas_leak: str
) -> None:
    lead = task_of(pg_engine, gas_leak, "gas")
    _accept(pg_engine, lead, "gas")
    _resolve(pg_engine, lead, "gas")
    _return(pg_engine, task_of(pg_engine, gas_leak, "fire"), "fire", "no fire risk here")
    case = case_of(pg_engine, gas_leak)
    assert case.state == CaseState.resolved
    assert case.return_count == 0
    assert sorted(deliveries(pg_engine, gas_leak)) == [
        ("fire", "task.assigned"),
        ("gas", "task.assigned"),
    ]


def test_the_lead_returning_releases_the_round_and_sends_the_case_back_to_dispatch(
    pg_engine: Engine, ruleset: Ruleset, gas_leak: str
) -> None:
    lead, fire = task_of(pg_engine, gas_leak, "gas"), task_of(pg_engine, gas_leak, "fire")
    _accept(pg_engine, fire, "fire")
    _return(pg_engine, lead, "gas", "this is a sewer smell, not gas")

    assert task_row(pg_engine, lead).state == TaskState.returned
    assert task_row(pg_engine, fire).state == TaskState.released
    assert last_event(pg_engine, gas_leak, "task.returned")["reason"] == (
        "this is a sewer smell, not gas"
    )
    case = case_of(pg_engine, gas_leak)
    assert (case.state, case.return_count) == (CaseState.triaged, 1)
    assert actions(pg_engine, gas_leak)[-3:] == ["task.returned", "task.released", "case.returned"]
    assert ("fire", "task.cancelled") in deliveries(pg_engine, gas_leak)
    assert delivery_details(pg_engine, gas_leak, "task.cancelled") == [
        {"reason": "returned by gas"}
    ]
    # One from triage, one from the return.
    assert count(pg_engine, OutboxMessage, task_name=DISPATCH, case_id=gas_leak) == 2

    before = event_count(pg_engine, gas_leak)
    _return(pg_engine, lead, "gas", "this is a sewer smell, not gas")
    assert event_count(pg_engine, gas_leak) == before

    redispatch(pg_engine, gas_leak, ruleset)
    case = case_of(pg_engine, gas_leak)
    assert case.state == CaseState.dispatched
    assert case.lead_department not in {"gas", None}


def test_a_case_returned_twice_goes_to_the_operations_centre(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset, **ELEVATOR)
    assert case_of(pg_engine, case_id).lead_department == "market"
    _return(pg_engine, task_of(pg_engine, case_id, "market"), "market")
    redispatch(pg_engine, case_id, ruleset)
    assert case_of(pg_engine, case_id).lead_department == "housing"
    _return(pg_engine, task_of(pg_engine, case_id, "housing"), "housing")
    redispatch(pg_engine, case_id, ruleset)
    case = case_of(pg_engine, case_id)
    assert (case.return_count, case.dispatch_round) == (2, 3)
    assert case.lead_department == ruleset.catch_all.settings.lead
    assert verify(pg_engine).ok


def test_an_assisting_return_ends_only_its_own_task(pg_engine: Engine, gas_leak: str) -> None:
    fire = task_of(pg_engine, gas_leak, "fire")
    _return(pg_engine, fire, "fire")
    assert task_row(pg_engine, fire).state == TaskState.returned
    assert task_row(pg_engine, task_of(pg_engine, gas_leak, "gas")).state == TaskState.assigned
    case = case_of(pg_engine, gas_leak)
    assert (case.state, case.return_count) == (CaseState.dispatched, 0)
    assert count(pg_engine, OutboxMessage, task_name=DISPATCH, case_id=gas_leak) == 1


def test_resolving_a_returned_task_is_refused_naming_both_states(
    pg_engine: Engine, gas_leak: str
) -> None:
    lead = task_of(pg_engine, gas_leak, "gas")
    _return(pg_engine, lead, "gas")
    with pytest.raises(TransitionRefused) as refused:
        _resolve(pg_engine, lead, "gas")
    assert refused.value.entity_id == lead
    assert (refused.value.current, refused.value.requested) == ("returned", "resolved")
    assert lead in str(refused.value)


def test_a_return_after_the_lead_started_work_is_refused(pg_engine: Engine, gas_leak: str) -> None:
    lead = task_of(pg_engine, gas_leak, "gas")
    _accept(pg_engine, lead, "gas")
    _progress(pg_engine, lead, "gas", "digging")
    with pytest.raises(TransitionRefused):
        _return(pg_engine, lead, "gas")
    assert task_row(pg_engine, lead).state == TaskState.in_progress
    assert count(pg_engine, OutboxMessage, task_name=DISPATCH, case_id=gas_leak) == 1


def _reassign(engine: Engine, ruleset: Ruleset, case_id: str, to: str) -> None:
    step(
        engine,
        lambda s: reassign(
            s, case_id, department=to, reason="wrong lead", actor=SUPERVISOR, ruleset=ruleset
        ),
    )


def test_after_a_reassignment_the_case_waits_for_the_helpers_of_the_round_before(
    pg_engine: Engine, ruleset: Ruleset, gas_leak: str
) -> None:
    fire = task_of(pg_engine, gas_leak, "fire")
    _accept(pg_engine, fire, "fire")
    _reassign(pg_engine, ruleset, gas_leak, "emergency")
    lead = task_of(pg_engine, gas_leak, "emergency")
    _accept(pg_engine, lead, "emergency")
    assert case_of(pg_engine, gas_leak).state == CaseState.accepted
    _resolve(pg_engine, lead, "emergency")
    assert case_of(pg_engine, gas_leak).state == CaseState.accepted
    _resolve(pg_engine, fire, "fire")
    assert case_of(pg_engine, gas_leak).state == CaseState.resolved


def test_a_reassigned_lead_returning_releases_the_helpers_of_the_round_before(
    pg_engine: Engine, ruleset: Ruleset, gas_leak: str
) -> None:
    _reassign(pg_engine, ruleset, gas_leak, "emergency")
    _return(pg_engine, task_of(pg_engine, gas_leak, "emergency"), "emergency")
    assert task_row(pg_engine, task_of(pg_engine, gas_leak, "fire")).state == TaskState.released
    assert case_of(pg_engine, gas_leak).state == CaseState.triaged


def test_every_task_is_born_with_an_event_that_names_it(
    pg_engine: Engine, ruleset: Ruleset, gas_leak: str
) -> None:
    """The dispatch's event names each task it made, a reassignment's the new lead's: no
    task row exists that the case's timeline does not account for, by id."""
    _reassign(pg_engine, ruleset, gas_leak, "emergency")  # still dispatched: a note
    lead = task_of(pg_engine, gas_leak, "emergency")
    _accept(pg_engine, lead, "emergency")
    _reassign(pg_engine, ruleset, gas_leak, "water")  # accepted: triaged, dispatched again
    with session_factory(pg_engine)() as session:
        tasks = set(session.scalars(select(Task.id).where(Task.case_id == gas_leak)))
        named = [
            (event.action, born["id"])
            for event in timeline(session, gas_leak)
            for born in event.data.get("tasks", [])
        ]
    assert len(tasks) == 4  # gas and fire, then emergency, then water
    assert {task_id for _, task_id in named} == tasks
    assert len(named) == len(tasks)  # each born once
    assert [action for action, _ in named] == [
        "case.dispatched", "case.dispatched", "case.reassigned", "case.dispatched",
    ]  # fmt: skip
