"""The monitor task triages a case, then dispatches it itself through the held outbox
message; when that dispatch fails, the message goes to the dispatch task at once."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.support.factories import HOTLINE, incident
from tests.support.statements import recorded
from worker.db.guard import ConcurrentChange
from worker.db.models import Case, OutboxMessage
from worker.db.session import get_engine, session_factory, transaction
from worker.ledger.audit import timeline
from worker.ledger.lifecycle import record
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


def test_dispatch_right_after_triage_does_not_read_the_case_again(
    pg_engine: Engine, service: dict[str, str]
) -> None:
    case_id = _received(pg_engine)
    with recorded(get_engine()) as statements:  # the engine the task uses
        pipeline.monitor(case_id)
    read = [statement for statement in statements if statement.startswith("SELECT cases.")]
    assert _state(pg_engine, case_id) == "dispatched"
    assert len(read) == 1  # triage's own read; dispatch used the case as triage wrote it


def test_a_change_between_triage_and_dispatch_is_caught_and_the_dispatch_task_takes_over(
    pg_engine: Engine, service: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dispatch works on the case as triage left it; if someone wrote to the case in between
    (here: a note on its timeline), the version guard refuses the stale write, and the held
    message goes to the dispatch task, which reads the case afresh."""
    real_take = pipeline.take

    def someone_writes_first(session: Session, message_id: int) -> bool:
        with transaction(pg_engine) as other:
            case = other.get_one(Case, case_id)
            record(other, case, actor=HOTLINE, action="case.note", data={"text": "meanwhile"})
        return real_take(session, message_id)

    monkeypatch.setattr(pipeline, "take", someone_writes_first)
    case_id = _received(pg_engine)
    pipeline.monitor(case_id)
    assert _state(pg_engine, case_id) == "triaged"
    assert DISPATCH in _queued_tasks(service)
    pipeline.dispatch(case_id)  # what the worker that takes the message runs
    assert _state(pg_engine, case_id) == "dispatched"
    with session_factory(pg_engine)() as session:
        actions = [e.action for e in timeline(session, case_id)]
    assert actions == ["case.received", "case.triaged", "case.note", "case.dispatched"]
