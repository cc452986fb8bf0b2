"""Delivery outcomes on the case's timeline, compact enough for one line each."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.db.models import Case, Delivery
from worker.lifecycle import record

WEBHOOKS = Actor(kind=ActorKind.system, id="webhooks")


def record_delivery(
    session: Session,
    delivery: Delivery,
    action: str,
    *,
    actor: Actor = WEBHOOKS,
    **data: Any,
) -> None:
    case = session.get(Case, delivery.case_id)
    if case is None:
        return  # a delivery about no case (never made by closeloop itself) has no timeline
    record(
        session,
        case,
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
