"""Supervisors reassign, escalate and cancel through the API; other roles may not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tests.api.conftest import Headers, TokenMaker
from tests.support.clock import frozen
from tests.support.factories import HOTLINE, SYSTEM, incident
from worker.clock import FrozenClock
from worker.contracts.enums import CaseState, TaskState
from worker.db.models import Case, Delivery
from worker.db.session import session_factory
from worker.ledger.audit import verify
from worker.ledger.lifecycle import transition, transition_task
from worker.rules import registry
from worker.stages.command import lead_task
from worker.stages.dispatch import dispatch
from worker.stages.intake import accept_incident
from worker.stages.triage import triage
from worker.tasks.timers import scan_deadlines_once

GAS_LEAK = {
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "location": {"district": "gulou"},
}
WHY = {"reason": "gas company crews are all out at the refinery fire"}


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    with frozen() as held:
        yield held


def dispatched(engine: Engine) -> str:
    """A gas leak dispatched by the rules the API has in force: gas leads, fire assists."""
    ruleset = registry.get()
    with session_factory(engine)() as session, session.begin():
        case_id = accept_incident(session, incident(**GAS_LEAK), actor=HOTLINE).case.id
    with session_factory(engine)() as session, session.begin():
        triage(session, case_id, ruleset)
    with session_factory(engine)() as session, session.begin():
        dispatch(session, case_id, ruleset)
    return case_id


def lead_moves(engine: Engine, case_id: str, *states: TaskState) -> None:
    """The lead department works on the task; the case follows its lead."""
    follows = {TaskState.accepted: CaseState.accepted, TaskState.in_progress: CaseState.in_progress}
    with session_factory(engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        lead = lead_task(case)
        assert lead is not None
        for state in states:
            transition_task(session, lead, state, actor=SYSTEM)
            transition(session, case, follows[state], actor=SYSTEM)


def sent(engine: Engine, case_id: str) -> list[tuple[str, str]]:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(Delivery.event_type, Delivery.department)
            .where(Delivery.case_id == case_id)
            .order_by(Delivery.created_at, Delivery.event_type, Delivery.department)
        )
        return [(event, department) for event, department in rows]


def post(
    client: TestClient, case_id: str, action: str, headers: Headers, body: dict[str, Any]
) -> Any:
    return client.post(f"/v1/cases/{case_id}/{action}", json=body, headers=headers)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def actions(shown: dict[str, Any]) -> list[str]:
    return [event["action"] for event in shown["timeline"]]


def test_reassign_cancels_the_lead_task_and_dispatches_a_new_round(
    client: TestClient, supervisor: Headers, engine: Engine, clock: FrozenClock
) -> None:
    case_id = dispatched(engine)
    clock.advance(timedelta(minutes=20))
    answer = post(client, case_id, "reassign", supervisor, {"department": "emergency", **WHY})
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert shown["state"] == "dispatched"
    assert shown["lead_department"] == "emergency"
    tasks = {(t["department"], t["role"]): t["state"] for t in shown["tasks"]}
    assert tasks == {
        ("gas", "lead"): "cancelled",
        ("fire", "assisting"): "assigned",
        ("emergency", "lead"): "assigned",
    }
    new_lead = next(t for t in shown["tasks"] if t["department"] == "emergency")
    assert new_lead["acknowledge_due_at"] == shown["acknowledge_due_at"]
    # Fresh deadlines: the gas-leak route's 15 min and 2 h, counted from the reassignment.
    assert moment(shown["acknowledge_due_at"]) == clock.now() + timedelta(minutes=15)
    assert moment(shown["resolve_due_at"]) == clock.now() + timedelta(hours=2)
    assert actions(shown)[-2:] == ["task.cancelled", "case.reassigned"]
    reassigned = shown["timeline"][-1]
    assert reassigned["actor"]["kind"] == "supervisor"
    assert reassigned["data"]["from"] == "gas"
    assert reassigned["data"]["reason"] == WHY["reason"]
    assert sorted(sent(engine, case_id)) == [
        ("task.assigned", "emergency"),
        ("task.assigned", "fire"),
        ("task.assigned", "gas"),
        ("task.reassigned", "gas"),
    ]

    again = post(client, case_id, "reassign", supervisor, {"department": "emergency", **WHY})
    assert again.status_code == 200
    assert again.json()["timeline"] == shown["timeline"]
    assert len(sent(engine, case_id)) == 4


def test_an_accepted_case_goes_back_through_triaged_to_dispatched(
    client: TestClient, supervisor: Headers, engine: Engine, clock: FrozenClock
) -> None:
    case_id = dispatched(engine)
    lead_moves(engine, case_id, TaskState.accepted)
    shown = post(client, case_id, "reassign", supervisor, {"department": "fire", **WHY}).json()
    assert shown["state"] == "dispatched"
    moves = [(e["action"], e["to_state"]) for e in shown["timeline"][-2:]]
    assert moves == [("case.reassigned", "triaged"), ("case.dispatched", "dispatched")]
    assert verify(engine).ok


def test_reassign_refuses_work_in_progress_and_unknown_departments(
    client: TestClient, supervisor: Headers, engine: Engine
) -> None:
    case_id = dispatched(engine)
    unknown = post(client, case_id, "reassign", supervisor, {"department": "nasa", **WHY})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "department"
    assert "nasa" in unknown.json()["detail"]

    lead_moves(engine, case_id, TaskState.accepted, TaskState.in_progress)
    refused = post(client, case_id, "reassign", supervisor, {"department": "fire", **WHY})
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "'in_progress'" in refused.json()["detail"]
    assert sorted(sent(engine, case_id)) == [("task.assigned", "fire"), ("task.assigned", "gas")]


def test_escalate_by_hand_takes_the_next_step_and_the_scan_skips_it(
    client: TestClient, supervisor: Headers, engine: Engine, clock: FrozenClock
) -> None:
    case_id = dispatched(engine)
    shown = post(client, case_id, "escalate", supervisor, WHY).json()
    assert shown["escalation_level"] == 1
    escalated = shown["timeline"][-1]
    assert escalated["action"] == "case.escalated"
    assert escalated["data"]["notify"] == "ops-centre"
    assert escalated["data"]["reason"] == WHY["reason"]
    assert sent(engine, case_id)[-1] == ("task.escalated", "ops-centre")

    clock.advance(timedelta(minutes=16))  # step 1 came due, but was taken by hand
    scan_deadlines_once(engine)
    assert [e for e, d in sent(engine, case_id) if e == "task.escalated"] == ["task.escalated"]
    clock.advance(timedelta(minutes=30))
    scan_deadlines_once(engine)
    escalations = [d for e, d in sent(engine, case_id) if e == "task.escalated"]
    assert escalations == ["ops-centre", "emergency"]


def test_escalate_past_the_plan_goes_to_whom_the_lead_escalates_to(
    client: TestClient, supervisor: Headers, engine: Engine
) -> None:
    case_id = dispatched(engine)
    for _ in range(4):
        shown = post(client, case_id, "escalate", supervisor, WHY).json()
    assert shown["escalation_level"] == 4
    # The plan names ops-centre, emergency, supervision; gas then escalates to ops-centre.
    escalations = [d for e, d in sent(engine, case_id) if e == "task.escalated"]
    assert escalations == ["ops-centre", "emergency", "supervision", "ops-centre"]


def test_cancel_cancels_every_live_task_once(
    client: TestClient, supervisor: Headers, engine: Engine
) -> None:
    case_id = dispatched(engine)
    answer = post(client, case_id, "cancel", supervisor, WHY)
    assert answer.status_code == 200
    shown = answer.json()
    assert shown["state"] == "cancelled"
    assert {t["state"] for t in shown["tasks"]} == {"cancelled"}
    assert shown["timeline"][-1]["data"] == WHY
    cancelled = sorted(d for e, d in sent(engine, case_id) if e == "task.cancelled")
    assert cancelled == ["fire", "gas"]

    again = post(client, case_id, "cancel", supervisor, WHY)
    assert again.status_code == 200
    assert again.json() == shown
    assert len(sent(engine, case_id)) == 4


def test_a_finished_case_cannot_be_cancelled_or_escalated(
    client: TestClient, supervisor: Headers, engine: Engine
) -> None:
    with session_factory(engine)() as session, session.begin():
        case_id = accept_incident(session, incident(), actor=HOTLINE).case.id
        case = session.get_one(Case, case_id)
        transition(session, case, CaseState.merged, actor=SYSTEM)
    for action in ("cancel", "escalate"):
        refused = post(client, case_id, action, supervisor, WHY)
        assert refused.status_code == 409
        assert "'merged'" in refused.json()["detail"]


@pytest.mark.parametrize("action", ["reassign", "escalate", "cancel"])
def test_only_supervisors_and_admins_may_step_in(
    client: TestClient, token: TokenMaker, engine: Engine, action: str
) -> None:
    case_id = dispatched(engine)
    body = {"department": "fire", **WHY} if action == "reassign" else WHY
    for role, department in (("hotline", None), ("department", "gas"), ("monitor", None)):
        refused = post(client, case_id, action, token(role, department=department), body)
        assert refused.status_code == 403, role
    assert post(client, "no-such-case", action, token("admin"), body).status_code == 404
    assert post(client, case_id, action, token("admin"), body).status_code == 200


def test_a_reason_is_required(client: TestClient, supervisor: Headers, engine: Engine) -> None:
    case_id = dispatched(engine)
    answer = post(client, case_id, "cancel", supervisor, {"reason": "  "})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "reason"
    assert post(client, case_id, "escalate", supervisor, {}).status_code == 422


def test_a_reassigned_case_is_watched_on_its_new_deadlines(
    client: TestClient, supervisor: Headers, engine: Engine, clock: FrozenClock
) -> None:
    case_id = dispatched(engine)
    clock.advance(timedelta(minutes=10))
    post(client, case_id, "reassign", supervisor, {"department": "emergency", **WHY})
    clock.advance(timedelta(minutes=6))  # the first round's deadline has passed, not the new one
    scan_deadlines_once(engine)
    assert [d for e, d in sent(engine, case_id) if e == "task.escalated"] == []
    assert [d for e, d in sent(engine, case_id) if e == "task.reminder"] == ["fire"]

    clock.advance(timedelta(minutes=10))
    scan_deadlines_once(engine)
    assert [d for e, d in sent(engine, case_id) if e == "task.reminder"] == ["fire", "emergency"]
    with session_factory(engine)() as session:
        escalated = session.scalars(
            select(Delivery).where(
                Delivery.case_id == case_id, Delivery.event_type == "task.escalated"
            )
        ).one()
    assert escalated.department == "ops-centre"
    assert escalated.dedupe_key == f"task.escalated:{case_id}:1:2"
    assert escalated.payload["task"]["department"] == "emergency"
