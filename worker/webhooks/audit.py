"""Delivery outcomes on the case's timeline, compact enough for one line each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.db.models import Delivery
from worker.ledger.audit import append_note

if TYPE_CHECKING:
    from worker.ledger.deliveries import Sending

WEBHOOKS = Actor(kind=ActorKind.system, id="webhooks")


def record_delivery(
    session: Session,
    delivery: Delivery | Sending,
    action: str,
    *,
    actor: Actor = WEBHOOKS,
    **data: Any,
) -> None:
    # A delivery about no case (never made by closeloop itself) has no timeline.
    append_note(
        session,
        delivery.case_id,
        actor=actor,
        action=action,
        data={
            "delivery_id": delivery.id,
            "webhook_id": delivery.webhook_id,
            "department": delivery.department,
            "event_type": delivery.event_type,
            **{k: v for k, v in data.items() if v is not None},
        },
    )
