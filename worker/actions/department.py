"""What a department does with its task: accept it, report progress, resolve it, or return it.

The case follows its lead task (the lead of the case's current dispatch round):

- the lead accepts: the case is `accepted`;
- the lead's first progress report: the case is `in_progress`;
- the lead has resolved and no other task on the case is still live (every assisting task
  is done, returned or released): the case is `resolved` and the citizen's callback falls
  due. An assisting task that ends after the lead resolved can be what resolves the case;
- the lead returns the task: the other live tasks are released (each department is told),
  and the case goes back to `triaged` for dispatch, which excludes every department that
  returned it. An assisting department's return ends only its own task.

"Other live tasks" are looked for in every round, not only the lead's: a supervisor's
reassignment starts a new round for the lead alone, and the assisting departments of the
round before keep working on the same case.

Every function is idempotent: asked again for what is already so, it changes nothing and
answers the same. A move the lifecycle refuses raises `TransitionRefused`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.config import get_settings
from worker.contracts.audit import Actor
from worker.contracts.enums import CaseState as C
from worker.contracts.enums import TaskRole
from worker.contracts.enums import TaskState as T
from worker.db.models import AuditEvent, Case, Task
from worker.idempotency import Key, claim, fingerprint
from worker.ledger.lifecycle import (
    CASE_TRANSITIONS,
    LIVE_TASK_STATES,
    record,
    transition,
    transition_task,
)
from worker.messaging.outbox import enqueue
from worker.tasks.names import DISPATCH
from worker.webhooks import build_payload, queue_delivery

# Accepting again once a task got this far is a repeat, not a new move.
_ACCEPTED_ONCE = frozenset({T.accepted, T.in_progress, T.resolved})
PROGRESS_ACTIONS = ("task.in_progress", "task.progress")


def accept(session: Session, task: Task, actor: Actor) -> Task:
    """The department takes the task on; the acknowledge deadline is met."""
    if task.state in _ACCEPTED_ONCE:
        return task
    task.acknowledged_at = now()
    transition_task(session, task, T.accepted, actor=actor)
    if leads(task):
        _follow(session, task.case, C.accepted, actor)
    return task


def report_progress(
    session: Session,
    task: Task,
    actor: Actor,
    note: str,
    attachments: list[str],
    *,
    idempotency_key: Key | None = None,
) -> Task:
    """A note on the work (with links to photos, say). The first one starts the work.

    With an `idempotency_key`, a report with a key seen before is a repeat if it says the
    same about the same task, and refused (`KeyReused`) if not; without one, a report that
    says exactly what the last one said is a repeat.
    """
    if idempotency_key is not None:
        asked = fingerprint({"task_id": task.id, "note": note, "attachments": attachments})
        if not claim(session, idempotency_key, asked, "progress report", task_id=task.id):
            return task
    elif _repeats_last_progress(session, task, note, attachments):
        return task
    data: dict[str, Any] = {"note": note, "attachments": attachments}
    if idempotency_key is not None:
        data["idempotency_key"] = idempotency_key.value
    if task.state == T.in_progress:
        record(
            session,
            task.case,
            actor=actor,
            action="task.progress",
            data={"task_id": task.id, "department": task.department, **data},
        )
        return task
    transition_task(session, task, T.in_progress, actor=actor, data=data)
    if leads(task):
        _follow(session, task.case, C.in_progress, actor)
    return task


def resolve(session: Session, task: Task, actor: Actor, note: str) -> Task:
    """The department's work is done; the case is resolved once its whole round is."""
    if task.state == T.resolved:
        return task
    task.resolved_at = now()
    transition_task(session, task, T.resolved, actor=actor, data={"note": note})
    resolve_case_if_round_done(session, task.case, actor)
    return task


def return_task(session: Session, task: Task, actor: Actor, reason: str) -> Task:
    """Not ours: the lead's return sends the case back to dispatch without this department."""
    if task.state == T.returned:
        return task
    transition_task(session, task, T.returned, actor=actor, data={"reason": reason})
    if not leads(task):
        resolve_case_if_round_done(session, task.case, actor)
        return task
    case = task.case
    _release_others(session, case, task, actor)
    case.return_count += 1
    transition(
        session,
        case,
        C.triaged,
        actor=actor,
        action="case.returned",
        data={
            "task_id": task.id,
            "department": task.department,
            "reason": reason,
            "return_count": case.return_count,
        },
    )
    enqueue(session, DISPATCH, {"case_id": case.id}, case_id=case.id)
    return task


def leads(task: Task) -> bool:
    """The lead task of its case's current round: the one the case follows."""
    return task.role == TaskRole.lead and task.dispatch_round == task.case.dispatch_round


def round_tasks(case: Case) -> list[Task]:
    return [t for t in case.tasks if t.dispatch_round == case.dispatch_round]


def resolve_case_if_round_done(session: Session, case: Case, actor: Actor) -> bool:
    """Resolve the case if its lead resolved and no task on it is still live."""
    lead_resolved = any(
        t.role == TaskRole.lead and t.state == T.resolved for t in round_tasks(case)
    )
    if not lead_resolved or any(t.state in LIVE_TASK_STATES for t in case.tasks):
        return False
    if C.resolved not in CASE_TRANSITIONS[C(case.state)]:
        return False
    moment = now()
    case.resolved_at = moment
    case.callback_due_at = moment + get_settings().callback_window_delta()
    transition(
        session,
        case,
        C.resolved,
        actor=actor,
        data={"round": case.dispatch_round, "callback_due_at": case.callback_due_at},
    )
    return True


def _follow(session: Session, case: Case, to: C, actor: Actor) -> None:
    # The case may already be past this point (a lead reassigned mid-round, say): it only
    # ever follows forward along its own lifecycle, never back.
    if to in CASE_TRANSITIONS[C(case.state)]:
        transition(session, case, to, actor=actor)


def _release_others(session: Session, case: Case, returned: Task, actor: Actor) -> None:
    reason = f"returned by {returned.department}"
    for task in case.tasks:
        if task is returned or task.state not in LIVE_TASK_STATES:
            continue
        transition_task(session, task, T.released, actor=actor, data={"reason": reason})
        queue_delivery(
            session,
            case=case,
            task=task,
            department=task.department,
            event_type="task.cancelled",
            payload=build_payload(case, task, details={"reason": reason}),
            dedupe_key=f"task.cancelled:{task.id}",
        )


def _repeats_last_progress(session: Session, task: Task, note: str, attachments: list[str]) -> bool:
    reports = [
        event.data
        for event in session.scalars(
            select(AuditEvent)
            .where(AuditEvent.case_id == task.case_id, AuditEvent.action.in_(PROGRESS_ACTIONS))
            .order_by(AuditEvent.seq)
        )
        if event.data.get("task_id") == task.id
    ]
    if not reports:
        return False
    last = reports[-1]
    return last.get("note") == note and last.get("attachments") == attachments
