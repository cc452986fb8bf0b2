"""The case and task lifecycles: the one table of allowed moves, and the one function each
that applies a move and writes its audit event in the caller's transaction.

Nothing else writes `Case.state` or `Task.state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import CaseState as C
from worker.contracts.enums import TaskRole
from worker.contracts.enums import TaskState as T
from worker.db.guard import ConcurrentChange, flush_guarded
from worker.db.models import AuditEvent, Callback, Case, Task, new_id
from worker.ledger.audit import append_event, open_case_row

__all__ = [
    "ConcurrentChange",
    "NewTask",
    "TransitionRefused",
    "open_case",
    "open_tasks",
    "record",
    "record_callback",
    "transition",
    "transition_task",
]

CASE_TRANSITIONS: dict[C, frozenset[C]] = {
    C.received: frozenset({C.triaged, C.merged, C.cancelled}),
    C.triaged: frozenset({C.dispatched, C.cancelled}),
    C.dispatched: frozenset({C.accepted, C.triaged, C.cancelled}),
    C.accepted: frozenset({C.in_progress, C.resolved, C.triaged, C.cancelled}),
    C.in_progress: frozenset({C.resolved, C.cancelled}),
    C.resolved: frozenset({C.closed, C.dispatched}),
    C.closed: frozenset({C.dispatched}),
    C.merged: frozenset(),
    C.cancelled: frozenset(),
}

TASK_TRANSITIONS: dict[T, frozenset[T]] = {
    T.assigned: frozenset({T.accepted, T.returned, T.released, T.cancelled}),
    T.accepted: frozenset({T.in_progress, T.resolved, T.returned, T.released, T.cancelled}),
    T.in_progress: frozenset({T.resolved, T.released, T.cancelled}),
    T.resolved: frozenset(),
    T.returned: frozenset(),
    T.released: frozenset(),
    T.cancelled: frozenset(),
}

OPEN_CASE_STATES = frozenset({C.received, C.triaged, C.dispatched, C.accepted, C.in_progress})
LIVE_TASK_STATES = frozenset({T.assigned, T.accepted, T.in_progress})


class TransitionRefused(Exception):
    """The lifecycle does not allow this move from the current state."""

    def __init__(self, kind: str, entity_id: str, current: str, requested: str) -> None:
        allowed = sorted(
            s.value
            for s in (
                CASE_TRANSITIONS[C(current)] if kind == "case" else TASK_TRANSITIONS[T(current)]
            )
        )
        super().__init__(
            f"{kind} {entity_id} is '{current}' and cannot move to '{requested}' "
            f"(from '{current}' it can move to: {', '.join(allowed) or 'nothing, it is final'})"
        )
        self.kind, self.entity_id, self.current, self.requested = (
            kind,
            entity_id,
            current,
            requested,
        )


def open_case(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
    reporter: dict[str, str | None] | None = None,
) -> bool:
    """The first move of every case: (new) → received. Inserts `case` (a new object) with its
    first audit event, and its reporter if any; False, writing nothing, when the case's unique
    keys (idempotency key; source and external id) clash with a case already there.

    Plain statements, the case row's `ON CONFLICT DO NOTHING` instead of a savepoint: a
    filing is the API's busiest write. The object then joins the session as if loaded."""
    if case.audit_seq:
        raise ValueError(f"case {case.id} was opened already")
    case.state = C.received.value
    return open_case_row(session, case, actor=actor, data=data, reporter=reporter)


def transition(
    session: Session,
    case: Case,
    to: C,
    *,
    actor: Actor,
    action: str | None = None,
    data: dict[str, Any] | None = None,
    rules_version: str | None = None,
) -> AuditEvent:
    """Move `case` to `to`, append its audit event, and flush under the version guard."""
    current = C(case.state)
    if to not in CASE_TRANSITIONS[current]:
        raise TransitionRefused("case", case.id, current.value, to.value)
    case.state = to.value
    return append_event(  # flushed under the case's version guard
        session,
        case,
        actor=actor,
        action=action or f"case.{to.value}",
        from_state=current,
        to_state=to,
        data=data,
        rules_version=rules_version,
    )


def record(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    action: str,
    data: dict[str, Any] | None = None,
    rules_version: str | None = None,
) -> AuditEvent:
    """An audit event that changes no state (a note, a delivery outcome, an escalation)."""
    return append_event(  # flushed under the case's version guard
        session, case, actor=actor, action=action, data=data, rules_version=rules_version
    )


def transition_task(
    session: Session,
    task: Task,
    to: T,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Move a department's task; the event goes on its case's chain."""
    current = T(task.state)
    if to not in TASK_TRANSITIONS[current]:
        raise TransitionRefused("task", task.id, current.value, to.value)
    task.state = to.value
    event = append_event(
        session,
        task.case,
        actor=actor,
        action=f"task.{to.value}",
        data={
            "task_id": task.id,
            "department": task.department,
            "role": task.role,
            "from": current.value,
            "to": to.value,
            **(data or {}),
        },
    )
    flush_guarded(session, "task", task.id)
    return event


@dataclass(frozen=True)
class NewTask:
    """A department's task to be born in the case's current dispatch round."""

    department: str
    role: TaskRole
    acknowledge_due_at: datetime
    resolve_due_at: datetime


def open_tasks(
    session: Session,
    case: Case,
    new: Sequence[NewTask],
    *,
    actor: Actor,
    to: C | None = None,
    action: str | None = None,
    data: dict[str, Any] | None = None,
    rules_version: str | None = None,
) -> list[Task]:
    """The birth of tasks, `assigned`, and the one event that records it: the case's move to
    `to` (a dispatch), or, with `to` None, a note named `action` (a reassignment of a case
    already dispatched). The event names every task born, by id."""
    tasks = [
        Task(
            id=new_id(),
            case=case,
            department=spec.department,
            role=spec.role.value,
            state=T.assigned.value,
            dispatch_round=case.dispatch_round,
            acknowledge_due_at=spec.acknowledge_due_at,
            resolve_due_at=spec.resolve_due_at,
        )
        for spec in new
    ]
    session.add_all(tasks)
    born = [{"id": t.id, "department": t.department, "role": t.role} for t in tasks]
    facts = {**(data or {}), "tasks": born}
    if to is not None:
        transition(
            session, case, to, actor=actor, action=action, data=facts, rules_version=rules_version
        )
    elif action is not None:
        record(session, case, actor=actor, action=action, data=facts, rules_version=rules_version)
    else:
        raise ValueError("a task's birth is recorded by a move (`to`) or a note (`action`)")
    return tasks


def record_callback(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    solved: bool | None,
    satisfied: bool | None,
    comment: str,
    outcome: str,
    idempotency_key: str | None = None,
) -> Callback:
    """The citizen's answer at the callback (or its absence): a callback row and its event.
    What the case does next (close, reopen) is the caller's move."""
    callback = Callback(
        case_id=case.id,
        solved=solved,
        satisfied=satisfied,
        comment=comment,
        outcome=outcome,
        recorded_by=actor.id,
        recorded_at=now(),
    )
    session.add(callback)
    session.flush()  # its id goes into the event
    data: dict[str, Any] = {
        "solved": solved,
        "satisfied": satisfied,
        "comment": comment,
        "outcome": outcome,
        "callback_id": callback.id,
    }
    if idempotency_key is not None:
        data["idempotency_key"] = idempotency_key
    record(session, case, actor=actor, action="callback.recorded", data=data)
    return callback
