"""Beat's scan for webhooks due: retries whose time came, claims whose worker died, and
send messages the broker lost. Retries are held here, in the database, never as broker ETAs.

Each due delivery is marked `queued` with a lease before its send message goes out (through
the outbox, after commit), so a backlog on the webhooks queue is not filled again with the
same deliveries every scan; if the message is lost, the lease ends and the next scan queues
it again.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.db.models import Delivery
from worker.ledger.deliveries import WAITING, DeliveryState, move
from worker.messaging.outbox import enqueue
from worker.tasks.names import SEND_WEBHOOK
from worker.webhooks.sending import note_lost_attempt

QUEUED_LEASE = timedelta(minutes=5)
SCAN_LIMIT = 500


def queue_due(session: Session, *, limit: int = SCAN_LIMIT) -> list[str]:
    """Queue a send for every delivery due now; returns their ids. Never commits."""
    at = now()
    due = session.scalars(
        select(Delivery)
        .where(Delivery.state.in_(WAITING), Delivery.next_attempt_at <= at)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for delivery in due:
        note_lost_attempt(session, delivery)
        move(session, delivery, DeliveryState.queued, next_attempt_at=at + QUEUED_LEASE)
        enqueue(session, SEND_WEBHOOK, {"delivery_id": delivery.id}, case_id=delivery.case_id)
    return [delivery.id for delivery in due]
