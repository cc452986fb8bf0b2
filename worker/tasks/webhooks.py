"""The webhooks queue: send one delivery's attempt; find the deliveries due (beat)."""

from __future__ import annotations

from typing import Any

from worker.config import get_settings
from worker.db.session import get_engine, transaction
from worker.tasks.app import app
from worker.tasks.base import ClosedLoopTask
from worker.tasks.names import SCAN_WEBHOOKS, SEND_WEBHOOK
from worker.webhooks import queue_due, send_delivery


def beat() -> dict[str, dict[str, Any]]:
    """Retries are held in the database; this scan is what makes them happen on time."""
    every = get_settings().webhook_scan_interval
    # A scan that waited past the next one is superseded by it: never let them pile up.
    return {
        "webhooks-scan-due": {
            "task": SCAN_WEBHOOKS,
            "schedule": every,
            "options": {"expires": every},
        }
    }


@app.task(base=ClosedLoopTask, name=SEND_WEBHOOK)
def send(delivery_id: str) -> str:
    return send_delivery(get_engine(), delivery_id)


@app.task(base=ClosedLoopTask, name=SCAN_WEBHOOKS)
def scan_due() -> int:
    with transaction() as session:
        return len(queue_due(session))
