"""Dead letters, replay and retry-now: what a supervisor does when a department missed tasks.

A replay sends the same message again with the same `webhook-id` (so a department that did
get it after all can tell it is a repeat), from the start of the schedule. A retry-now takes
a delivery still waiting for its next attempt (say, after its department fixed its endpoint)
and makes that attempt due at once: the same delivery, the same `webhook-id`, its schedule
carried on from where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.config import get_settings
from worker.contracts.audit import Actor
from worker.db.models import Delivery
from worker.ledger.deliveries import DeliveryState, move
from worker.messaging.outbox import enqueue
from worker.tasks.names import SEND_WEBHOOK
from worker.webhooks import circuit
from worker.webhooks.audit import record_delivery
from worker.webhooks.scan import QUEUED_LEASE
from worker.webhooks.schedule import parse_schedule

REPLAYABLE = frozenset({"dead", "delivered"})
STATES = ("pending", "queued", "sending", "delivered", "dead")
BULK_LIMIT = 1000


class NotReplayable(Exception):
    """The delivery is still on its way; replaying it would send it twice at once."""


class NotRetryable(Exception):
    """The delivery is not waiting for a retry: retrying it now would mean nothing or twice."""


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def find_deliveries(
    session: Session,
    *,
    state: str | None = None,
    department: str | None = None,
    event_type: str | None = None,
    case_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.updated_at.desc(), Delivery.id)
    for column, value in (
        (Delivery.state, state),
        (Delivery.department, department),
        (Delivery.event_type, event_type),
        (Delivery.case_id, case_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return list(session.scalars(query.limit(limit).offset(offset)))


def replay_delivery(session: Session, delivery: Delivery, *, actor: Actor) -> None:
    """Send it again from the start of the schedule. Never commits."""
    if delivery.state not in REPLAYABLE:
        hint = "; a pending one can be retried now instead" if delivery.state == "pending" else ""
        raise NotReplayable(
            f"delivery {delivery.id} is '{delivery.state}': only a dead or delivered one "
            f"can be replayed{hint}"
        )
    was = delivery.state
    first = parse_schedule(get_settings().webhook_schedule)[0]
    move(
        session,
        delivery,
        DeliveryState.pending,
        attempts_before_replay=delivery.attempts,
        next_attempt_at=now() + first,
    )
    record_delivery(session, delivery, "delivery.replayed", actor=actor, was=was)
    enqueue(session, SEND_WEBHOOK, {"delivery_id": delivery.id}, case_id=delivery.case_id)


def replay_deliveries(session: Session, ids: list[str], *, actor: Actor) -> ReplayReport:
    report = ReplayReport()
    for delivery_id in dict.fromkeys(ids):
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            report.skipped[delivery_id] = "no such delivery"
            continue
        try:
            replay_delivery(session, delivery, actor=actor)
        except NotReplayable as refused:
            report.skipped[delivery_id] = str(refused)
            continue
        report.replayed.append(delivery_id)
    return report


def retry_delivery_now(session: Session, delivery: Delivery, *, actor: Actor) -> None:
    """Make a pending delivery's next attempt due at once. Never commits.

    It is marked `queued` with its send message, as beat's scan marks a delivery whose time
    came, so the scan does not queue it a second time meanwhile."""
    if delivery.state != "pending":
        raise NotRetryable(_why_not_pending(delivery))
    was_due = delivery.next_attempt_at
    at = now()
    move(session, delivery, DeliveryState.queued, next_attempt_at=at + QUEUED_LEASE)
    record_delivery(
        session,
        delivery,
        "delivery.retried_now",
        actor=actor,
        attempts=delivery.attempts,
        was_due=was_due.isoformat() if was_due is not None else None,
    )
    enqueue(session, SEND_WEBHOOK, {"delivery_id": delivery.id}, case_id=delivery.case_id)


def _why_not_pending(delivery: Delivery) -> str:
    if delivery.state in REPLAYABLE:
        return (
            f"delivery {delivery.id} is '{delivery.state}': only a pending one can be retried "
            "now; replay it instead"
        )
    return f"delivery {delivery.id} is '{delivery.state}': its next attempt is already on its way"


def retry_deliveries_now(session: Session, ids: list[str], *, actor: Actor) -> ReplayReport:
    """Retry each pending delivery now; the report's `replayed` lists the ones retried."""
    report = ReplayReport()
    for delivery_id in dict.fromkeys(ids):
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            report.skipped[delivery_id] = "no such delivery"
            continue
        try:
            retry_delivery_now(session, delivery, actor=actor)
        except NotRetryable as refused:
            report.skipped[delivery_id] = str(refused)
            continue
        report.replayed.append(delivery_id)
    return report


def dead_ids(
    session: Session,
    *,
    department: str | None = None,
    event_type: str | None = None,
    case_id: str | None = None,
) -> list[str]:
    found = find_deliveries(
        session,
        state="dead",
        department=department,
        event_type=event_type,
        case_id=case_id,
        limit=BULK_LIMIT,
    )
    return [delivery.id for delivery in found]


def enable_endpoint(session: Session, department: str) -> bool:
    """Undo a 410 (the department says its endpoint is back) and close its circuit."""
    state = circuit.lock(session, department)
    if state is None:
        return False
    circuit.reset(state)
    circuit.save(session, state)
    return True
