"""The embedded default (`closeloop up`) keeps its store in SQLite: the same deliveries work
there, with the default settings and the published schedule."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from tests.support.scripted_receiver import Receiver, Reply
from tests.webhooks.conftest import Departments, case_with_task, delivery, drive, queue
from worker.clock import FrozenClock
from worker.webhooks import send_delivery


def test_retry_and_delivery_on_sqlite(
    sqlite_engine: Engine, receiver: Receiver, departments: Departments, clock: FrozenClock
) -> None:
    [secret] = departments.add("water", receiver.url)
    receiver.script(Reply(500))
    case_id, task_id = case_with_task(sqlite_engine)
    delivery_id = queue(sqlite_engine, case_id, task_id)
    assert queue(sqlite_engine, case_id, task_id) == delivery_id

    assert send_delivery(sqlite_engine, delivery_id, endpoints=departments) == "retry"
    clock.advance(timedelta(seconds=4))  # the second slot is 5 s, give or take 15 %
    assert drive(sqlite_engine, departments) == []
    clock.advance(timedelta(seconds=3))
    assert drive(sqlite_engine, departments) == ["delivered"]
    assert len({r.webhook_id for r in receiver.received}) == 1
    receiver.received[-1].verify(secret)
    assert [a.status_code for a in delivery(sqlite_engine, delivery_id).attempt_log] == [500, 200]
