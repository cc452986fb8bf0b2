"""Dispatch: route a triaged case to its departments.

Apply the rules in force; create one task per department (the lead, and each assisting one)
with its deadlines; queue one signed webhook delivery per task through the outbox. The case
records who leads, the route path, the deadlines and the escalation plan; the audit event
records the whole decision and the ruleset version that made it.

A case that comes back here after a return excludes every department that returned it; a
case returned twice goes to the operations centre (the catch-all's lead).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind, CaseState, TaskRole, TaskState
from worker.db.models import Case, Task
from worker.ledger.lifecycle import NewTask, open_tasks
from worker.rules import Decision, Ruleset, decide
from worker.stages.triage import incident_of
from worker.webhooks import build_payload, queue_delivery

ACTOR = Actor(kind=ActorKind.system, id="dispatch")
RETURNS_BEFORE_OPERATIONS_CENTRE = 2


def dispatch(session: Session, case_id: str, ruleset: Ruleset) -> list[Task] | None:
    """Dispatch `case_id` if it is still `triaged`; None if someone already did (idempotent)."""
    case = session.get(Case, case_id)
    if case is None or case.state != CaseState.triaged:
        return None
    decision = route(session, case, ruleset)
    case.dispatch_round += 1
    record_decision(case, decision)
    tasks = open_tasks(
        session,
        case,
        new_tasks(decision),
        actor=ACTOR,
        to=CaseState.dispatched,
        data={
            "round": case.dispatch_round,
            "lead": decision.lead,
            "assisting": decision.assisting,
            "priority": decision.priority.value,
            "route_path": decision.route_path,
            "acknowledge_due_at": decision.acknowledge_due_at,
            "resolve_due_at": decision.resolve_due_at,
        },
        rules_version=decision.ruleset_version,
    )
    for task in tasks:
        notify_assigned(session, case, task)
    return tasks


def route(session: Session, case: Case, ruleset: Ruleset) -> Decision:
    """The rules' decision for this case now; the clock starts at intake for the first round."""
    # Before the first round the case has no tasks, so no department can have returned one.
    returned = _returned_by(session, case.id) if case.dispatch_round else set()
    if case.return_count >= RETURNS_BEFORE_OPERATIONS_CENTRE:
        returned |= _everyone_but_operations_centre(ruleset)
    started = case.received_at if case.dispatch_round == 0 else now()
    return decide(ruleset, incident_of(case), started, exclude=frozenset(returned))


def _returned_by(session: Session, case_id: str) -> set[str]:
    return set(
        session.scalars(
            select(Task.department).where(
                Task.case_id == case_id, Task.state == TaskState.returned.value
            )
        )
    )


def _everyone_but_operations_centre(ruleset: Ruleset) -> set[str]:
    lead = ruleset.catch_all.settings.lead
    return {d for d in ruleset.departments if d != lead}


def new_tasks(decision: Decision) -> list[NewTask]:
    """The lead's task and each assisting department's, with the route's deadlines."""
    return [
        NewTask(department, role, decision.acknowledge_due_at, decision.resolve_due_at)
        for department, role in [
            (decision.lead, TaskRole.lead),
            *((d, TaskRole.assisting) for d in decision.assisting),
        ]
    ]


def record_decision(case: Case, decision: Decision) -> None:
    case.lead_department = decision.lead
    case.priority = decision.priority.value
    case.rules_version = decision.ruleset_version
    case.route_path = list(decision.route_path)
    case.acknowledge_due_at = decision.acknowledge_due_at
    case.resolve_due_at = decision.resolve_due_at
    case.share_contact = decision.share_contact
    case.dispatched_at = now()
    case.escalation_plan = escalation_plan(decision)


def escalation_plan(decision: Decision) -> list[dict[str, Any]]:
    """The route's escalation chain with each step's due time, as the case stores it."""
    return [
        {
            "level": step.level,
            "after": step.after,
            "notify": step.notify,
            "due_at": _iso(decision.escalation_due_at(step)),
            "delay_s": step.delay / timedelta(seconds=1),
        }
        for step in decision.escalation
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def notify_assigned(session: Session, case: Case, task: Task) -> None:
    queue_delivery(
        session,
        case=case,
        task=task,
        department=task.department,
        event_type="task.assigned",
        payload=build_payload(case, task),
        dedupe_key=f"task.assigned:{task.id}",
        new_key=True,
    )
