"""The dispatch stage: one task per department with its deadlines, one delivery per task,
the decision on the case and in the audit store; idempotent; returns exclude."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.support.factories import HOTLINE, SYSTEM, incident
from worker.contracts.enums import CaseState, TaskState
from worker.db.models import Case, Delivery, Task
from worker.db.session import session_factory
from worker.ledger.audit import timeline, verify
from worker.ledger.lifecycle import transition, transition_task
from worker.rules import Ruleset, load_ruleset
from worker.stages.dispatch import dispatch
from worker.stages.intake import accept_incident
from worker.stages.triage import triage

RULES = Path(__file__).resolve().parents[2] / "routing_rules"
GAS_LEAK = {
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "location": {"district": "gulou"},
}


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


def _triaged(engine: Engine, ruleset: Ruleset, **overrides: Any) -> str:
    with session_factory(engine)() as session, session.begin():
        case_id = accept_incident(session, incident(**overrides), actor=HOTLINE).case.id
    with session_factory(engine)() as session, session.begin():
        triage(session, case_id, ruleset)
    return case_id


def _dispatch(engine: Engine, case_id: str, ruleset: Ruleset) -> list[Task] | None:
    with session_factory(engine)() as session, session.begin():
        return dispatch(session, case_id, ruleset)


def _tasks(engine: Engine, case_id: str) -> list[tuple[str, str, int]]:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(Task.department, Task.role, Task.dispatch_round)
            .where(Task.case_id == case_id)
            .order_by(Task.dispatch_round, Task.role.desc(), Task.department)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_gas_leak_goes_to_gas_with_fire_assisting(pg_engine: Engine, ruleset: Ruleset) -> None:
    case_id = _triaged(pg_engine, ruleset, **GAS_LEAK)
    _dispatch(pg_engine, case_id, ruleset)
    assert _tasks(pg_engine, case_id) == [("gas", "lead", 1), ("fire", "assisting", 1)]
    with session_factory(pg_engine)() as session:
        case = session.get_one(Case, case_id)
        assert case.state == CaseState.dispatched
        assert case.lead_department == "gas"
        assert case.route_path == ["life-safety/gas-leak"]
        assert case.rules_version == ruleset.version
        assert case.resolve_due_at == case.received_at + timedelta(hours=2)
        assert case.acknowledge_due_at == case.received_at + timedelta(minutes=15)
        assert [step["notify"] for step in case.escalation_plan] == [
            "ops-centre",
            "emergency",
            "supervision",
        ]
        deliveries = session.scalars(select(Delivery).where(Delivery.case_id == case_id)).all()
        assert sorted(d.department for d in deliveries) == ["fire", "gas"]
        assert {d.event_type for d in deliveries} == {"task.assigned"}
        event = timeline(session, case_id)[-1]
        assert event.action == "case.dispatched"
        assert event.data["lead"] == "gas"
        assert event.data["assisting"] == ["fire"]
        assert event.rules_version == ruleset.version


def test_dispatch_twice_creates_nothing_more(pg_engine: Engine, ruleset: Ruleset) -> None:
    case_id = _triaged(pg_engine, ruleset, **GAS_LEAK)
    assert _dispatch(pg_engine, case_id, ruleset)
    assert _dispatch(pg_engine, case_id, ruleset) is None
    with session_factory(pg_engine)() as session:
        tasks = session.scalar(select(func.count()).where(Task.case_id == case_id))
        deliveries = session.scalar(select(func.count()).where(Delivery.case_id == case_id))
    assert (tasks, deliveries) == (2, 2)


def _return_lead(engine: Engine, case_id: str) -> str:
    """The lead department returns the task: the case goes back to triaged."""
    with session_factory(engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        lead = next(t for t in case.tasks if t.role == "lead" and t.state == TaskState.assigned)
        transition_task(
            session, lead, TaskState.returned, actor=SYSTEM, data={"reason": "not ours"}
        )
        for task in case.tasks:
            if task.state == TaskState.assigned:
                transition_task(session, task, TaskState.released, actor=SYSTEM)
        case.return_count += 1
        transition(session, case, CaseState.triaged, actor=SYSTEM, action="case.returned")
        return lead.department


def test_a_returned_case_goes_elsewhere_then_to_the_operations_centre(
    pg_engine: Engine, ruleset: Ruleset
) -> None:
    case_id = _triaged(pg_engine, ruleset, category="water.pipe_burst", title="水管爆裂")
    _dispatch(pg_engine, case_id, ruleset)
    first = _return_lead(pg_engine, case_id)
    _dispatch(pg_engine, case_id, ruleset)
    second_round = [t for t in _tasks(pg_engine, case_id) if t[2] == 2]
    assert second_round
    assert all(dept != first for dept, _, _ in second_round)
    _return_lead(pg_engine, case_id)
    _dispatch(pg_engine, case_id, ruleset)
    third_round = [t for t in _tasks(pg_engine, case_id) if t[2] == 3]
    assert third_round == [(ruleset.catch_all.settings.lead, "lead", 3)]
    assert verify(pg_engine).ok
