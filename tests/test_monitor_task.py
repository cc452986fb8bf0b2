"""The monitor task triages a case, then dispatches it itself through the held outbox
message; when that dispatch fails, the message goes to the dispatch task at once."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import Engine, select

from tests.support.factories import HOTLINE, incident
from worker.db.guard import ConcurrentChange
from worker.db.models import Case, OutboxMessage
from worker.db.session import session_factory, transaction
from worker.stages.intake import accept_incident
from worker.tasks import pipeline
from worker.tasks.names import DISPATCH

GAS_LEAK = {"category": "gas.leak", "title": "煤气泄漏", "location": {"district": "gulou"}}


def _received(engine: Engine) -> str:
    with transaction(engine) as session:
        return accept_incident(session, incident(**GAS_LEAK), actor=HOTLINE).case.id


def _state(engine: Engine, case_id: str) -> str:
    with session_factory(engine)() as session:
        return session.get_one(Case, case_id).state


def _dispatch_message(engine: Engine) -> OutboxMessage:
    with session_factory(engine)() as session:
        return session.scalars(
            select(OutboxMessage).where(OutboxMessage.task_name == DISPATCH)
        ).one()


def _queued_tasks(service: dict[str, str]) -> list[str]:
    client = redis.Redis.from_url(service["CLOSELOOP_BROKER_URL"])
    try:
        raw = client.lrange(f"{service['CLOSELOOP_BROKER_KEY_PREFIX']}pipeline", 0, -1)
    finally:
        client.close()
    return [json.loads(item)["headers"]["task"] for item in raw]


def test_the_monitor_task_dispatches_the_case_it_triaged(
    pg_engine: Engine, service: dict[str, str]
) -> None:
    case_id = _received(pg_engine)
    pipeline.monitor(case_id)
    assert _state(pg_engine, case_id) == "dispatched"
    assert _dispatch_message(pg_engine).published_at is not None  # taken here
    assert DISPATCH not in _queued_tasks(service)  # no trip through the broker


def test_a_failed_dispatch_right_after_triage_goes_to_the_dispatch_task_at_once(
    pg_engine: Engine, service: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def changed_meanwhile(*_: object) -> None:
        raise ConcurrentChange("case", "someone else's")

    monkeypatch.setattr(pipeline, "dispatch_case", changed_meanwhile)
    case_id = _received(pg_engine)
    pipeline.monitor(case_id)
    assert _state(pg_engine, case_id) == "triaged"
    assert _dispatch_message(pg_engine).published_at is not None  # not left to the relay
    assert DISPATCH in _queued_tasks(service)
