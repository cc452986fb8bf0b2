"""Close loop: the hotline calls the citizen back once a case is resolved.

Solved and satisfied closes the case. Anything else reopens it: the same lead (and the same
assisting departments) get a new task in a new dispatch round, with fresh deadlines of the
length the rules give this case now, and the case's escalation level goes up one. A case
whose callback window passes with no answer is closed with that reason. A supervisor may
reopen a resolved or closed case the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind, TaskRole, TaskState
from worker.contracts.enums import CaseState as C
from worker.db.models import Callback, Case, Task
from worker.ledger.audit import timeline
from worker.ledger.lifecycle import open_tasks, record_callback, transition
from worker.rules import Ruleset
from worker.stages.dispatch import new_tasks, notify_assigned, record_decision, route
from worker.webhooks import build_payload, queue_delivery

ACTOR = Actor(kind=ActorKind.system, id="closeloop")
SATISFIED = "citizen satisfied"
NO_ANSWER = "no answer within the callback window"
REOPENABLE = frozenset({C.resolved, C.closed})
AUTO_CLOSE_BATCH = 500


class NotNow(Exception):
    """The case is not in a state where this can be done (feedback before it is resolved)."""


def record_feedback(
    session: Session,
    case: Case,
    actor: Actor,
    solved: bool,
    satisfied: bool,
    comment: str,
    *,
    ruleset: Ruleset,
    idempotency_key: str | None = None,
) -> Callback:
    """Store the citizen's answer; close the case if solved and satisfied, else reopen it.

    With an `idempotency_key` seen before on this case, the answer recorded then is returned
    and nothing changes (a retried request after a lost response); the same key with a
    different answer is refused."""
    if idempotency_key is not None:
        earlier = _feedback_with_key(session, case, idempotency_key)
        if earlier is not None:
            if (earlier.solved, earlier.satisfied, earlier.comment) != (solved, satisfied, comment):
                raise NotNow(
                    f"Idempotency-Key {idempotency_key!r} was used for a different answer on "
                    f"case {case.id}: use a new key for a new answer"
                )
            return earlier
    if case.state != C.resolved:
        raise NotNow(
            f"case {case.id} is '{case.state}': the citizen's answer is recorded only on a "
            "resolved case"
        )
    closes = solved and satisfied
    outcome = "closed" if closes else "reopened"
    callback = record_callback(
        session,
        case,
        actor=actor,
        solved=solved,
        satisfied=satisfied,
        comment=comment,
        outcome=outcome,
        idempotency_key=idempotency_key,
    )
    if closes:
        close(session, case, actor, SATISFIED)
    else:
        _reopen(session, case, actor, ruleset, why=_why_unhappy(solved, satisfied, comment))
    return callback


def reopen(session: Session, case: Case, actor: Actor, reason: str, *, ruleset: Ruleset) -> Case:
    """A supervisor sends a resolved or closed case back to its lead."""
    if case.state not in REOPENABLE:
        raise NotNow(
            f"case {case.id} is '{case.state}': only a resolved or closed case can be reopened"
        )
    _reopen(session, case, actor, ruleset, why={"reason": reason})
    return case


def auto_close(session: Session, at: datetime) -> int:
    """Close every resolved case whose callback window passed unanswered; returns how many."""
    due = session.scalars(
        select(Case)
        .where(Case.state == C.resolved.value, Case.callback_due_at <= at)
        .order_by(Case.callback_due_at)
        .limit(AUTO_CLOSE_BATCH)
    ).all()
    for case in due:
        record_callback(
            session, case, actor=ACTOR, solved=None, satisfied=None, comment="",
            outcome="no_answer",
        )  # fmt: skip
        close(session, case, ACTOR, NO_ANSWER)
    return len(due)


def close(session: Session, case: Case, actor: Actor, reason: str) -> None:
    case.closed_at = now()
    case.close_reason = reason
    transition(session, case, C.closed, actor=actor, data={"reason": reason})


def _feedback_with_key(session: Session, case: Case, key: str) -> Callback | None:
    for event in timeline(session, case.id):
        if event.action == "callback.recorded" and event.data.get("idempotency_key") == key:
            return session.get(Callback, event.data["callback_id"])
    return None


def _why_unhappy(solved: bool, satisfied: bool, comment: str) -> dict[str, Any]:
    problem = "not solved" if not solved else "citizen not satisfied"
    return {"reason": problem, "comment": comment}


def _reopen(
    session: Session, case: Case, actor: Actor, ruleset: Ruleset, *, why: dict[str, Any]
) -> None:
    """A new round for the same departments, deadlines afresh, one escalation level up."""
    lead, assisting = _last_departments(case)
    # The rules in force say how long this case may take now; who does it is already known.
    decision = route(session, case, ruleset).model_copy(
        update={"lead": lead, "assisting": assisting}
    )
    case.dispatch_round += 1
    case.reopen_count += 1
    case.escalation_level += 1
    case.overdue = False
    case.resolved_at = case.closed_at = case.callback_due_at = None
    case.close_reason = None
    record_decision(case, decision)
    tasks = open_tasks(
        session,
        case,
        new_tasks(decision),
        actor=actor,
        to=C.dispatched,
        action="case.reopened",
        data={
            **why,
            "round": case.dispatch_round,
            "lead": lead,
            "assisting": assisting,
            "reopen_count": case.reopen_count,
            "escalation_level": case.escalation_level,
            "acknowledge_due_at": decision.acknowledge_due_at,
            "resolve_due_at": decision.resolve_due_at,
        },
        rules_version=decision.ruleset_version,
    )
    for task in tasks:
        if task.role == TaskRole.lead:
            _notify_reopened(session, case, task, why)
        else:
            notify_assigned(session, case, task)


def _last_departments(case: Case) -> tuple[str, list[str]]:
    lead = case.lead_department or next(t.department for t in case.tasks if t.role == TaskRole.lead)
    return lead, [d for d in _last_assisting(case) if d != lead]


def _last_assisting(case: Case) -> list[str]:
    """The assisting departments of the latest round that had any. A reassignment's round
    holds only the new lead; its helpers are those of the round before."""
    for round_no in range(case.dispatch_round, 0, -1):
        helpers = [
            t for t in case.tasks if t.dispatch_round == round_no and t.role == TaskRole.assisting
        ]
        if helpers:
            # A department that returned its part said it was not theirs: not asked again.
            ended = (TaskState.returned, TaskState.released, TaskState.cancelled)
            return list(dict.fromkeys(t.department for t in helpers if t.state not in ended))
    return []


def _notify_reopened(session: Session, case: Case, task: Task, why: dict[str, Any]) -> None:
    queue_delivery(
        session,
        case=case,
        task=task,
        department=task.department,
        event_type="case.reopened",
        payload=build_payload(
            case,
            task,
            details={
                **why,
                "reopen_count": case.reopen_count,
                "escalation_level": case.escalation_level,
            },
        ),
        dedupe_key=f"case.reopened:{task.id}",
    )
