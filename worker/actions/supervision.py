"""Command, by hand: what a supervisor may do to a case (reassign, escalate, cancel).

Each function loads the case, refuses what its state does not allow (`ActionRefused`, naming
the state), changes it through `worker.ledger.lifecycle`, queues the webhooks that announce it, and
never commits. None means there is no such case.

Reassigning is allowed while the lead department has not started work: from `dispatched`
(the case stays there) and from `accepted` (back through `triaged` to `dispatched`, the only
path the lifecycle has). Once work is `in_progress` the lifecycle has no way back to
dispatch, so a reassignment is refused; cancel, or let the department finish or escalate.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import CaseState, TaskRole, TaskState
from worker.db.models import Case, Task
from worker.escalation import open_steps
from worker.ledger.lifecycle import (
    CASE_TRANSITIONS,
    LIVE_TASK_STATES,
    NewTask,
    open_tasks,
    transition,
    transition_task,
)
from worker.rules import Decision, Ruleset, decide
from worker.stages.command import WATCHED_STATES, escalate, fire_step, lead_task, load_case
from worker.stages.dispatch import escalation_plan, notify_assigned
from worker.stages.triage import incident_of
from worker.webhooks import build_payload, queue_delivery

REASSIGNABLE_STATES = (CaseState.dispatched, CaseState.accepted)


class ActionRefused(Exception):
    """The case's state does not allow this action."""

    def __init__(
        self, case: Case, action: str, allowed: Collection[CaseState], why: str = ""
    ) -> None:
        names = ", ".join(s.value for s in allowed) or "no state"
        super().__init__(
            f"case {case.id} is '{case.state}' and cannot be {action}"
            f"{': ' + why if why else ''} ({action} is possible from: {names})"
        )
        self.case_id, self.state, self.action = case.id, case.state, action


class UnknownDepartment(LookupError):
    """The department is not one of the rules in force."""


def reassign(
    session: Session,
    case_id: str,
    *,
    department: str,
    reason: str,
    actor: Actor,
    ruleset: Ruleset,
) -> Case | None:
    """Give the case a new lead department, in a new dispatch round with fresh deadlines.
    Reassigning to the department that already leads changes nothing."""
    if department not in ruleset.departments:
        raise UnknownDepartment(f"there is no department {department!r} in the rules in force")
    case = load_case(session, case_id)
    if case is None:
        return None
    previous = lead_task(case)
    if previous is not None and previous.department == department:
        return case
    if case.state not in REASSIGNABLE_STATES:
        raise ActionRefused(case, "reassigned", REASSIGNABLE_STATES)
    decision = decide(ruleset, incident_of(case), now())
    _new_round(case, department, decision)
    facts: dict[str, Any] = {
        "reason": reason,
        "from": previous.department if previous else None,
        "to": department,
        "round": case.dispatch_round,
        "acknowledge_due_at": _iso(decision.acknowledge_due_at),
        "resolve_due_at": _iso(decision.resolve_due_at),
    }
    if previous is not None:
        transition_task(session, previous, TaskState.cancelled, actor=actor, data=facts)
    lead = NewTask(department, TaskRole.lead, decision.acknowledge_due_at, decision.resolve_due_at)
    task = _redispatch(session, case, lead, actor=actor, facts=facts, decision=decision)
    if previous is not None:
        _announce(session, case, previous, "task.reassigned", facts)
    notify_assigned(session, case, task)
    return case


def _new_round(case: Case, department: str, decision: Decision) -> None:
    """The case's new round: the route's durations counted from now."""
    case.dispatch_round += 1
    case.lead_department = department
    case.acknowledge_due_at = decision.acknowledge_due_at
    case.resolve_due_at = decision.resolve_due_at
    case.escalation_plan = escalation_plan(decision)
    # The new deadline has not passed; a flag about the old one would mislead.
    case.overdue = False


def _announce(
    session: Session, case: Case, task: Task, event_type: str, details: dict[str, Any]
) -> None:
    """Tell the task's department what became of its task (once per task and event)."""
    queue_delivery(
        session,
        case=case,
        task=task,
        department=task.department,
        event_type=event_type,
        payload=build_payload(case, task, details=details),
        dedupe_key=f"{event_type}:{task.id}",
    )


def _redispatch(
    session: Session,
    case: Case,
    lead: NewTask,
    *,
    actor: Actor,
    facts: dict[str, Any],
    decision: Decision,
) -> Task:
    """The new lead's task, born with the event that dispatches the case again (a note, when
    the case is still dispatched)."""
    if case.state == CaseState.dispatched:
        (task,) = open_tasks(
            session, case, [lead], actor=actor, action="case.reassigned", data=facts
        )
        return task
    transition(session, case, CaseState.triaged, actor=actor, action="case.reassigned", data=facts)
    (task,) = open_tasks(
        session,
        case,
        [lead],
        actor=actor,
        to=CaseState.dispatched,
        data=facts,
        rules_version=decision.ruleset_version,
    )
    return task


def escalate_by_hand(
    session: Session, case_id: str, *, reason: str, actor: Actor, ruleset: Ruleset
) -> Case | None:
    """Raise the case one level: the next step of its plan not yet taken, or, once the plan
    is spent, the department the lead escalates to in the rules."""
    case = load_case(session, case_id)
    if case is None:
        return None
    if case.state not in WATCHED_STATES:
        raise ActionRefused(case, "escalated", WATCHED_STATES)
    steps = open_steps(case.escalation_plan)
    if steps:
        fire_step(session, case, steps[0], actor=actor, reason=reason)
        return case
    lead = case.lead_department
    leading = ruleset.departments.get(lead) if lead else None
    above = leading.escalates_to if leading else None
    if above is None:
        raise ActionRefused(
            case, "escalated", WATCHED_STATES, f"its plan is spent and {lead} escalates to no one"
        )
    escalate(session, case, notify=above, reason=reason, actor=actor, facts={"step": None})
    return case


def cancel(session: Session, case_id: str, *, reason: str, actor: Actor) -> Case | None:
    """Cancel the case and every live task on it. Cancelling a cancelled case changes
    nothing."""
    case = load_case(session, case_id)
    if case is None or case.state == CaseState.cancelled:
        return case
    if CaseState.cancelled not in CASE_TRANSITIONS[CaseState(case.state)]:
        raise ActionRefused(case, "cancelled", _states_that_may(CaseState.cancelled))
    live = [t for t in case.tasks if t.state in LIVE_TASK_STATES]
    for task in live:
        transition_task(session, task, TaskState.cancelled, actor=actor, data={"reason": reason})
    transition(session, case, CaseState.cancelled, actor=actor, data={"reason": reason})
    for task in live:
        _announce(session, case, task, "task.cancelled", {"reason": reason})
    return case


def _states_that_may(to: CaseState) -> list[CaseState]:
    return [state for state, moves in CASE_TRANSITIONS.items() if to in moves]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
