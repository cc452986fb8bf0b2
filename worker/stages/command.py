"""Command: watch every deadline and escalate what is late.

The deadline scan asks two indexed questions (`due_reminders`, `due_cases`) and then handles
each answer in a transaction of its own (`remind`, `watch`), so that one case changed by
someone else meanwhile costs only that case; the next scan tries it again.

- A task still `assigned` past its acknowledge deadline: its department gets one
  `task.reminder` (the task's `reminded_at` and the delivery's dedupe key make it once).
- An open case past its resolve deadline: flagged `overdue` with a `case.overdue` event, once.
- Each step of the case's escalation plan whose due time has passed: `acknowledge` steps
  while the lead task is still unacknowledged, `resolve` steps while the case is unresolved.
  Firing raises the case's escalation level, writes `case.escalated` and sends
  `task.escalated` to the department the step names. A step is marked in the plan as it
  fires; the case's version column makes a second scan racing this one fail instead of
  escalating twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import not_, select
from sqlalchemy.orm import Session, selectinload

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind, CaseState, TaskRole, TaskState
from worker.db.guard import flush_guarded
from worker.db.models import Case, Task
from worker.escalation import ACKNOWLEDGE, Step, due_steps, settled, step_due
from worker.ledger.lifecycle import LIVE_TASK_STATES, record
from worker.logging import get_logger
from worker.webhooks import build_payload, queue_delivery

ACTOR = Actor(kind=ActorKind.system, id="command")
# Cases a department is working on (or should be): where deadlines are watched.
WATCHED_STATES = (CaseState.dispatched, CaseState.accepted, CaseState.in_progress)

log = get_logger("closeloop.command")


def due_reminders(session: Session, *, limit: int) -> list[str]:
    """Tasks still unacknowledged past their acknowledge deadline and not yet reminded."""
    query = (
        select(Task.id)
        .where(
            Task.state == TaskState.assigned.value,
            Task.reminded_at.is_(None),
            Task.acknowledge_due_at <= now(),
        )
        .order_by(Task.acknowledge_due_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def due_cases(session: Session, *, limit: int) -> list[str]:
    """Open cases with an escalation step due, or past their resolve deadline unflagged."""
    at, watched = now(), [s.value for s in WATCHED_STATES]
    escalation = (
        select(Case.id)
        .where(Case.state.in_(watched), Case.next_escalation_at <= at)
        .order_by(Case.next_escalation_at)
        .limit(limit)
    )
    overdue = (
        select(Case.id)
        .where(Case.state.in_(watched), not_(Case.overdue), Case.resolve_due_at <= at)
        .order_by(Case.resolve_due_at)
        .limit(limit)
    )
    found = [*session.scalars(escalation), *session.scalars(overdue)]
    return list(dict.fromkeys(found))[:limit]


def remind(session: Session, task_id: str) -> bool:
    """Remind the task's department that its acknowledge deadline has passed; False when
    there is nothing to remind of (acknowledged meanwhile, reminded already, not yet due)."""
    task = session.get(Task, task_id)
    if task is None or task.state != TaskState.assigned or task.reminded_at is not None:
        return False
    deadline = task.acknowledge_due_at
    if deadline is None or deadline > now():
        return False
    case = load_case(session, task.case_id)
    assert case is not None  # a task's case is never removed
    task.reminded_at = now()
    record(
        session,
        case,
        actor=ACTOR,
        action="task.reminded",
        data={"task_id": task.id, "department": task.department, "deadline": _iso(deadline)},
    )
    details = {"reason": "acknowledge deadline passed", "deadline": _iso(deadline)}
    queue_delivery(
        session,
        case=case,
        task=task,
        department=task.department,
        event_type="task.reminder",
        payload=build_payload(case, task, details=details),
        dedupe_key=f"task.reminder:{task.id}",
    )
    return True


def watch(session: Session, case_id: str) -> list[int]:
    """Flag the case overdue and fire its due escalation steps; the levels reached."""
    case = load_case(session, case_id)
    if case is None or case.state not in WATCHED_STATES:
        return []
    at = now()
    _flag_overdue(session, case, at)
    reached = []
    for step in due_steps(case.escalation_plan, at):
        if step["after"] == ACKNOWLEDGE and not _unacknowledged(case):
            case.escalation_plan = settled(
                case.escalation_plan, int(step["level"]), passed_at=_iso(at)
            )
            continue
        reached.append(fire_step(session, case, step, actor=ACTOR, reason=_reason(step)))
    flush_guarded(session, "case", case.id)
    return reached


def fire_step(session: Session, case: Case, step: Step, *, actor: Actor, reason: str) -> int:
    """Escalate along one step of the plan and mark it fired; the level reached."""
    case.escalation_plan = settled(case.escalation_plan, int(step["level"]), fired_at=_iso(now()))
    deadline = case.acknowledge_due_at if step["after"] == ACKNOWLEDGE else case.resolve_due_at
    return escalate(
        session,
        case,
        notify=str(step["notify"]),
        reason=reason,
        actor=actor,
        facts={"step": int(step["level"]), "after": step["after"], "deadline": _iso(deadline)},
    )


def escalate(
    session: Session,
    case: Case,
    *,
    notify: str,
    reason: str,
    actor: Actor,
    facts: dict[str, Any] | None = None,
) -> int:
    """Raise the case one level and tell `notify`; the level reached. Each escalation raises
    the level by one, so a level names one escalation of the case for good."""
    case.escalation_level += 1
    level = case.escalation_level
    lead = lead_task(case)
    data = {
        "level": level,
        "reason": reason,
        "notify": notify,
        "round": case.dispatch_round,
        "lead_department": lead.department if lead else case.lead_department,
        **(facts or {}),
    }
    record(session, case, actor=actor, action="case.escalated", data=data)
    queue_delivery(
        session,
        case=case,
        task=lead,
        department=notify,
        event_type="task.escalated",
        payload=build_payload(case, lead, details=data),
        dedupe_key=f"task.escalated:{case.id}:{level}:{case.dispatch_round}",
    )
    log.info("case escalated", case_id=case.id, level=level, notify=notify)
    return level


def load_case(session: Session, case_id: str) -> Case | None:
    """The case with its tasks and reporters read now: loading them lazily later would flush
    half-made changes outside the version guard."""
    return session.get(
        Case, case_id, options=[selectinload(Case.tasks), selectinload(Case.reporters)]
    )


def lead_task(case: Case) -> Task | None:
    """The live lead task of the latest round, if there is one."""
    leads = [t for t in case.tasks if t.role == TaskRole.lead and t.state in LIVE_TASK_STATES]
    return max(leads, key=lambda t: t.dispatch_round, default=None)


def _unacknowledged(case: Case) -> bool:
    lead = lead_task(case)
    return lead is not None and lead.state == TaskState.assigned


def _flag_overdue(session: Session, case: Case, at: datetime) -> None:
    deadline = case.resolve_due_at
    if case.overdue or deadline is None or deadline > at:
        return
    case.overdue = True
    record(session, case, actor=ACTOR, action="case.overdue", data={"deadline": _iso(deadline)})


def _reason(step: Step) -> str:
    late = "acknowledged" if step["after"] == ACKNOWLEDGE else "resolved"
    return f"not {late} by {step_due(step).isoformat()}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
