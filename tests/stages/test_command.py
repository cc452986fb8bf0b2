"""The deadline watch, with a clock the tests hold: reminders, overdue flags and escalation
along the plan, each exactly once however often (and however concurrently) the scan runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from tests.support.clock import frozen
from tests.support.factories import HOTLINE, SYSTEM, incident
from worker.clock import FrozenClock
from worker.contracts.enums import CaseState, TaskState
from worker.db.guard import ConcurrentChange
from worker.db.models import Case, Delivery
from worker.db.session import session_factory
from worker.ledger.audit import timeline, verify
from worker.ledger.lifecycle import transition, transition_task
from worker.rules import Ruleset, load_ruleset
from worker.stages.command import due_cases, due_reminders, lead_task, watch
from worker.stages.dispatch import dispatch
from worker.stages.intake import accept_incident
from worker.stages.triage import triage
from worker.tasks.timers import scan_deadlines_once

RULES = Path(__file__).resolve().parents[2] / "routing_rules"
# The example city: gas acknowledges within 15 min and resolves within 2 h; its chain tells
# the operations centre at the acknowledge deadline, emergency management 30 min later, and
# the inspection office at the resolve deadline. The fire brigade assists.
GAS_LEAK = {
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "location": {"district": "gulou"},
}
SECOND = timedelta(seconds=1)


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    with frozen() as held:
        yield held


def dispatched(engine: Engine, ruleset: Ruleset, **overrides: Any) -> str:
    fields = {**GAS_LEAK, **overrides}
    with session_factory(engine)() as session, session.begin():
        case_id = accept_incident(session, incident(**fields), actor=HOTLINE).case.id
    with session_factory(engine)() as session, session.begin():
        triage(session, case_id, ruleset)
    with session_factory(engine)() as session, session.begin():
        dispatch(session, case_id, ruleset)
    return case_id


def sent(engine: Engine, case_id: str, event_type: str) -> list[str]:
    """Departments sent `event_type` about the case, in the order queued."""
    with session_factory(engine)() as session:
        return list(
            session.scalars(
                select(Delivery.department)
                .where(Delivery.case_id == case_id, Delivery.event_type == event_type)
                .order_by(Delivery.created_at, Delivery.department)
            )
        )


def events(engine: Engine, case_id: str, action: str) -> list[dict[str, Any]]:
    with session_factory(engine)() as session:
        return [e.data for e in timeline(session, case_id) if e.action == action]


def stored(engine: Engine, case_id: str) -> Case:
    with session_factory(engine)() as session:
        return session.get_one(Case, case_id)


def accept_lead(engine: Engine, case_id: str) -> None:
    with session_factory(engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        lead = lead_task(case)
        assert lead is not None
        transition_task(session, lead, TaskState.accepted, actor=SYSTEM)
        transition(session, case, CaseState.accepted, actor=SYSTEM)


def test_an_acknowledge_deadline_reminds_then_escalates_level_by_level(
    any_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(any_engine, ruleset)
    clock.advance(timedelta(minutes=15) - SECOND)
    assert scan_deadlines_once(any_engine) == 0

    clock.advance(2 * SECOND)
    scan_deadlines_once(any_engine)
    assert sorted(sent(any_engine, case_id, "task.reminder")) == ["fire", "gas"]
    assert sent(any_engine, case_id, "task.escalated") == ["ops-centre"]
    assert stored(any_engine, case_id).escalation_level == 1
    assert scan_deadlines_once(any_engine) == 0

    clock.advance(timedelta(minutes=30))
    scan_deadlines_once(any_engine)
    assert sent(any_engine, case_id, "task.escalated") == ["ops-centre", "emergency"]
    for _ in range(3):
        assert scan_deadlines_once(any_engine) == 0

    escalations = events(any_engine, case_id, "case.escalated")
    assert [(e["level"], e["notify"], e["after"]) for e in escalations] == [
        (1, "ops-centre", "acknowledge"),
        (2, "emergency", "acknowledge"),
    ]
    case = stored(any_engine, case_id)
    assert escalations[0]["deadline"] == case.acknowledge_due_at.isoformat()  # type: ignore[union-attr]
    assert case.escalation_level == 2
    assert sorted(r["department"] for r in events(any_engine, case_id, "task.reminded")) == [
        "fire",
        "gas",
    ]
    assert sent(any_engine, case_id, "task.reminder").count("gas") == 1
    assert verify(any_engine).ok


def test_the_escalation_webhook_names_the_level_the_reason_and_the_lead(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset)
    clock.advance(timedelta(minutes=16))
    scan_deadlines_once(pg_engine)
    with session_factory(pg_engine)() as session:
        delivery = session.scalars(
            select(Delivery).where(
                Delivery.case_id == case_id, Delivery.event_type == "task.escalated"
            )
        ).one()
    data = delivery.payload
    assert data["task"]["department"] == "gas"
    assert data["case"]["escalation_level"] == 1
    assert data["details"]["level"] == 1
    assert data["details"]["notify"] == "ops-centre"
    assert data["details"]["lead_department"] == "gas"
    assert data["details"]["reason"].startswith("not acknowledged by ")
    assert delivery.dedupe_key == f"task.escalated:{case_id}:1:1"


def test_a_lead_that_acknowledged_in_time_is_not_escalated_until_the_resolve_deadline(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset)
    clock.advance(timedelta(minutes=10))
    accept_lead(pg_engine, case_id)
    clock.advance(timedelta(hours=1))
    scan_deadlines_once(pg_engine)
    assert sent(pg_engine, case_id, "task.reminder") == ["fire"]  # the assisting one never did
    assert sent(pg_engine, case_id, "task.escalated") == []
    case = stored(pg_engine, case_id)
    assert case.escalation_level == 0
    assert not case.overdue
    assert [s.get("passed_at") is not None for s in case.escalation_plan] == [True, True, False]
    assert case.next_escalation_at == case.resolve_due_at

    clock.advance(timedelta(hours=1))  # two hours and ten minutes after filing
    scan_deadlines_once(pg_engine)
    scan_deadlines_once(pg_engine)
    case = stored(pg_engine, case_id)
    assert case.overdue
    assert case.escalation_level == 1
    assert events(pg_engine, case_id, "case.overdue") == [
        {"deadline": case.resolve_due_at.isoformat()}  # type: ignore[union-attr]
    ]
    escalated = events(pg_engine, case_id, "case.escalated")
    assert [(e["level"], e["notify"], e["after"]) for e in escalated] == [
        (1, "supervision", "resolve")
    ]
    assert sent(pg_engine, case_id, "task.escalated") == ["supervision"]
    assert case.next_escalation_at is None


def test_a_resolve_deadline_flags_overdue_before_its_escalation_comes_due(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    # A burst main: water resolves within 24 h; the chain tells the operations centre at the
    # deadline and the inspection office a day later.
    case_id = dispatched(pg_engine, ruleset, category="water.pipe_burst", title="水管爆裂")
    accept_lead(pg_engine, case_id)
    case = stored(pg_engine, case_id)
    assert case.resolve_due_at is not None
    clock.advance(case.resolve_due_at - clock.now() + SECOND)
    scan_deadlines_once(pg_engine)
    assert stored(pg_engine, case_id).overdue
    assert sent(pg_engine, case_id, "task.escalated") == ["ops-centre"]
    clock.advance(timedelta(hours=23))
    assert scan_deadlines_once(pg_engine) == 0
    clock.advance(timedelta(hours=1))
    scan_deadlines_once(pg_engine)
    assert sent(pg_engine, case_id, "task.escalated") == ["ops-centre", "supervision"]
    assert len(events(pg_engine, case_id, "case.overdue")) == 1


def test_a_resolved_case_is_left_alone(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset)
    accept_lead(pg_engine, case_id)
    with session_factory(pg_engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        for task in case.tasks:
            done = TaskState.resolved if task.role == "lead" else TaskState.released
            transition_task(session, task, done, actor=SYSTEM)
        transition(session, case, CaseState.resolved, actor=SYSTEM)
    clock.advance(timedelta(days=2))
    assert scan_deadlines_once(pg_engine) == 0
    assert not stored(pg_engine, case_id).overdue


def test_two_scans_that_read_the_same_case_escalate_it_once(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    case_id = dispatched(pg_engine, ruleset)
    clock.advance(timedelta(minutes=16))
    make = session_factory(pg_engine)
    with make() as first, make() as second:
        first.begin()
        second.begin()
        seen = second.get_one(Case, case_id)  # the second scan has read the case, then waits
        assert seen.escalation_level == 0
        assert watch(first, case_id) == [1]
        first.commit()
        with pytest.raises(ConcurrentChange):
            watch(second, case_id)
        second.rollback()
    assert scan_deadlines_once(pg_engine) >= 0
    assert [e["level"] for e in events(pg_engine, case_id, "case.escalated")] == [1]


def test_scans_running_at_once_remind_and_escalate_once(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    cases = [dispatched(pg_engine, ruleset) for _ in range(3)]
    clock.advance(timedelta(minutes=16))
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def scan() -> None:
        start.wait()
        try:
            scan_deadlines_once(pg_engine)
        except BaseException as error:  # a thread's error must fail the test, not vanish
            failures.append(error)

    threads = [threading.Thread(target=scan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    scan_deadlines_once(pg_engine)  # whatever a race left for later is done now, once
    for case_id in cases:
        assert [e["level"] for e in events(pg_engine, case_id, "case.escalated")] == [1]
        assert sent(pg_engine, case_id, "task.escalated") == ["ops-centre"]
        assert sorted(sent(pg_engine, case_id, "task.reminder")) == ["fire", "gas"]
        assert len(events(pg_engine, case_id, "task.reminded")) == 2
    assert verify(pg_engine).ok


def test_a_scan_takes_at_most_its_batch_and_the_next_takes_the_rest(
    pg_engine: Engine, ruleset: Ruleset, clock: FrozenClock
) -> None:
    cases = [dispatched(pg_engine, ruleset) for _ in range(3)]
    clock.advance(timedelta(minutes=16))
    with session_factory(pg_engine)() as session:
        assert len(due_cases(session, limit=2)) == 2
        assert len(due_reminders(session, limit=2)) == 2
    scan_deadlines_once(pg_engine, limit=2)
    escalated = [c for c in cases if events(pg_engine, c, "case.escalated")]
    assert len(escalated) == 2
    scan_deadlines_once(pg_engine, limit=2)
    scan_deadlines_once(pg_engine, limit=2)
    assert all(len(events(pg_engine, c, "case.escalated")) == 1 for c in cases)


def _plan(session: Session, query: str) -> str:
    session.execute(text("SET LOCAL enable_seqscan = off"))
    return "\n".join(str(row[0]) for row in session.execute(text(f"EXPLAIN {query}")))


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            "SELECT id FROM cases WHERE state IN ('dispatched', 'accepted', 'in_progress') "
            "AND next_escalation_at <= now()",
            "ix_cases_escalation_due",
        ),
        (
            "SELECT id FROM cases WHERE state IN ('dispatched', 'accepted', 'in_progress') "
            "AND NOT overdue AND resolve_due_at <= now()",
            "ix_cases_resolve_due",
        ),
        (
            "SELECT id FROM tasks WHERE state = 'assigned' AND reminded_at IS NULL "
            "AND acknowledge_due_at <= now()",
            "ix_tasks_",  # on an empty table either index of tasks' deadlines will do
        ),
    ],
)
def test_the_scan_questions_are_answered_from_an_index(
    pg_engine: Engine, query: str, index: str
) -> None:
    with session_factory(pg_engine)() as session, session.begin():
        assert index in _plan(session, query)
