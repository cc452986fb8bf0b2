"""The Celery tasks, run the way a worker runs them (through the task base), with the
department's endpoint and secret taken from the example city's routing rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.support.receiver import rules_pointing_at
from tests.support.scripted_receiver import Receiver, Reply, new_secret
from tests.support.service import ROOT
from tests.webhooks.conftest import case_with_task, delivery, queue
from worker.clock import FrozenClock
from worker.db.models import OutboxMessage
from worker.db.session import session_factory
from worker.tasks.names import SCAN_WEBHOOKS, SEND_WEBHOOK
from worker.tasks.schedule import beat_schedule
from worker.tasks.webhooks import scan_due, send


def test_send_and_scan_deliver_to_the_endpoint_the_rules_name(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    clock: FrozenClock,
    tmp_path: Path,
    rules_at: Callable[[Path], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url = receiver.url.removesuffix("/hooks")
    rules_at(rules_pointing_at(ROOT / "routing_rules", tmp_path / "rules", base_url))
    secret = new_secret()
    monkeypatch.setenv("CLOSELOOP_SECRET_WATER", secret)
    receiver.script(Reply(503, headers={"Retry-After": "0"}))
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)

    assert send.apply(args=[delivery_id]).get() == "retry"
    assert scan_due.apply().get() == 0  # the next slot is a second away
    clock.advance(timedelta(seconds=2))
    assert scan_due.apply().get() == 1
    with session_factory(pg_engine)() as session:
        sends = session.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.task_name == SEND_WEBHOOK)
            .order_by(OutboxMessage.id)
        ).all()
    assert sends == [{"delivery_id": delivery_id}] * 2  # queued, then queued again by the scan
    assert delivery(pg_engine, delivery_id).state == "queued"
    assert send.apply(args=[delivery_id]).get() == "delivered"

    assert [r.path for r in receiver.received] == ["/hooks/water"] * 2
    receiver.received[-1].verify(secret)


def test_beat_scans_for_due_webhooks_every_couple_of_seconds(
    settings: Callable[..., None],
) -> None:
    settings(webhook_scan_interval="1.5")
    entry = beat_schedule()["webhooks-scan-due"]
    assert entry["task"] == SCAN_WEBHOOKS
    assert entry["schedule"] == 1.5
