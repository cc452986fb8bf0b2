"""Telling the operations centre that a department's endpoint went away (410 Gone).

The notice is itself a webhook delivery, queued in the same transaction that disables the
endpoint, on the same case (that is where the loss shows on a timeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.db.models import Case, Delivery
from worker.logging import get_logger
from worker.urls import safe_url
from worker.webhooks.circuit import Health
from worker.webhooks.endpoints import EndpointUnusable, ops_department
from worker.webhooks.payloads import case_summary
from worker.webhooks.queue import ENDPOINT_DISABLED, queue_delivery

if TYPE_CHECKING:
    from worker.ledger.deliveries import Sending

log = get_logger("closeloop.webhooks")


def tell_ops_endpoint_disabled(
    session: Session, delivery: Delivery | Sending, endpoint: Health
) -> str | None:
    try:
        ops = ops_department()
    except EndpointUnusable as error:
        log.error("endpoint disabled; no operations centre to tell", error=str(error))
        return None
    case = session.get(Case, delivery.case_id)
    if case is None or ops == endpoint.department:
        # The operations centre's own endpoint is gone: the log and the audit store say so.
        log.error("operations centre endpoint disabled", department=endpoint.department)
        return None
    return queue_delivery(
        session,
        case=case,
        task=None,
        department=ops,
        event_type=ENDPOINT_DISABLED,
        payload={
            "department": endpoint.department,
            "url": safe_url(endpoint.url),
            "disabled_at": endpoint.disabled_at.isoformat() if endpoint.disabled_at else None,
            "reason": endpoint.disabled_reason,
            "delivery_id": delivery.id,
            "webhook_id": delivery.webhook_id,
            "case": case_summary(case),
        },
        dedupe_key=f"{ENDPOINT_DISABLED}:{delivery.webhook_id}:{delivery.attempts}",
    )
