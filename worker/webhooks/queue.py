"""Queueing a webhook: the delivery row and its send message, in the caller's transaction.

The dispatch and command stages call `queue_delivery`; the same `dedupe_key` twice returns the
row the first call made, so a stage that runs again never sends a department a second task.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.clock import now
from worker.config import get_settings
from worker.db.models import Case, Delivery, Task, new_id
from worker.ledger.deliveries import open_delivery
from worker.messaging.outbox import enqueue
from worker.tasks.names import SEND_WEBHOOK
from worker.webhooks.schedule import parse_schedule
from worker.webhooks.signing import new_webhook_id

TASK_EVENTS = frozenset(
    {
        "task.assigned",
        "task.reminder",
        "task.escalated",
        "task.reassigned",
        "task.cancelled",
        "case.reopened",
    }
)
ENDPOINT_DISABLED = "endpoint.disabled"
EVENT_TYPES = TASK_EVENTS | {ENDPOINT_DISABLED}


def _existing(session: Session, dedupe_key: str) -> str | None:
    return session.scalar(select(Delivery.id).where(Delivery.dedupe_key == dedupe_key))


def queue_delivery(
    session: Session,
    *,
    case: Case,
    task: Task | None,
    department: str,
    event_type: str,
    payload: dict[str, Any],
    dedupe_key: str,
    new_key: bool = False,
) -> str:
    """Create the delivery (or find the one with this `dedupe_key`) and its send message;
    returns its id. Never commits: it goes with the caller's transaction, or not at all.

    `new_key`: the key names something this transaction has just created (a new task), so no
    delivery can hold it yet; the look-up and its savepoint are skipped (the unique key on
    `dedupe_key` still stands guard).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}: one of {sorted(EVENT_TYPES)}")
    found = None if new_key else _existing(session, dedupe_key)
    if found is not None:
        return found
    first = parse_schedule(get_settings().webhook_schedule)[0]
    delivery_id = new_id()
    delivery = {
        "id": delivery_id,
        "webhook_id": new_webhook_id(),
        "dedupe_key": dedupe_key,
        "case_id": case.id,
        "task_id": task.id if task is not None else None,
        "department": department,
        "event_type": event_type,
        "payload": payload,
        "attempts": 0,
        "next_attempt_at": now() + first,
    }
    # A plain statement, not an ORM object (which costs several times more to write); the
    # session's pending objects go first, the task this delivery refers to among them.
    session.flush()
    if new_key:
        open_delivery(session, delivery)
    else:
        try:
            with session.begin_nested():
                open_delivery(session, delivery)
        except IntegrityError:
            # A concurrent caller queued the same thing and committed first: theirs stands.
            raced = _existing(session, dedupe_key)
            if raced is None:
                raise
            return raced
    enqueue(session, SEND_WEBHOOK, {"delivery_id": delivery_id}, case_id=case.id)
    return delivery_id
