"""What a department receives: the task, a summary of the case, the deadlines, and the links
to act on it. The citizen's contact is included only where the route says `share_contact`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, inspect, select
from sqlalchemy.orm import object_session

from worker.config import get_settings
from worker.db.models import Case, Reporter, Task

TASK_ACTIONS = ("accept", "progress", "resolve", "return")


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def case_summary(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "state": case.state,
        "category": case.category,
        "title": case.title,
        "description": case.description,
        "priority": case.priority,
        "location": {
            "latitude": case.latitude,
            "longitude": case.longitude,
            "address": case.address,
            "district": case.district,
            "grid": case.grid,
        },
        "received_at": _when(case.received_at),
        "occurred_at": _when(case.occurred_at),
        "reporter_count": case.reporter_count,
        "escalation_level": case.escalation_level,
        "overdue": case.overdue,
        "attachments": list(case.attachments or []),
    }


def task_summary(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "department": task.department,
        "role": task.role,
        "state": task.state,
        "dispatch_round": task.dispatch_round,
    }


def links(case: Case, task: Task | None) -> dict[str, str]:
    base = get_settings().base_url().rstrip("/")
    found = {"case": f"{base}/v1/cases/{case.id}"}
    if task is not None:
        found["task"] = f"{base}/v1/tasks/{task.id}"
        found.update({action: f"{base}/v1/tasks/{task.id}/{action}" for action in TASK_ACTIONS})
    return found


_REPORTERS: Table = Reporter.__table__  # type: ignore[assignment]
_CONTACTS = (
    select(_REPORTERS.c.name, _REPORTERS.c.phone, _REPORTERS.c.email)
    .where(_REPORTERS.c.case_id == bindparam("case_id"))
    .order_by(_REPORTERS.c.id)
)


def contacts(case: Case) -> list[dict[str, str | None]]:
    session = object_session(case)
    if session is None or "reporters" in inspect(case).dict:
        reporters: Iterable[Any] = case.reporters
    else:
        # Read with a plain statement rather than by loading the collection (its objects are
        # not needed, and loading them costs several times more); pending rows go first.
        session.flush()
        reporters = session.connection().execute(_CONTACTS, {"case_id": case.id})
    return [{"name": r.name, "phone": r.phone, "email": r.email} for r in reporters]


def build_payload(
    case: Case,
    task: Task | None,
    *,
    share_contact: bool | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `data` of a task webhook; `details` carries what is particular to the event (the
    reason for a cancellation, the escalation level reached, the previous department).
    The citizen's contact goes only if `share_contact` (unset: as the case's route decided)."""
    owner = task or case
    payload: dict[str, Any] = {
        "task": task_summary(task) if task is not None else None,
        "case": case_summary(case),
        "deadlines": {
            "acknowledge_by": _when(owner.acknowledge_due_at),
            "resolve_by": _when(owner.resolve_due_at),
        },
        "links": links(case, task),
        "details": details or {},
    }
    if case.share_contact if share_contact is None else share_contact:
        payload["contact"] = contacts(case)
    return payload
