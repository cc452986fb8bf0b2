"""Every failed attempt is logged at WARNING: which department, what went wrong (the status
or the error) and when the next attempt goes, or that there will be none."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from structlog.testing import capture_logs

from tests.support.scripted_receiver import Receiver, Reply
from tests.webhooks.conftest import Departments, case_with_task, delivery, queue
from worker.ops.embedded import free_port
from worker.webhooks import send_delivery


def attempt(engine: Engine, delivery_id: str, departments: Departments) -> dict[str, Any]:
    with capture_logs() as logs:
        send_delivery(engine, delivery_id, endpoints=departments)
    (warning,) = [line for line in logs if line["log_level"] == "warning"]
    return warning


def test_each_failed_attempt_says_why_and_when_the_next_goes(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
) -> None:
    settings(webhook_schedule="0s,0s,0s", webhook_circuit_failures="10")
    departments.add("water", receiver.url)
    receiver.script(Reply(503), Reply(200, hang=1.0))
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)

    first = attempt(pg_engine, delivery_id, departments)
    assert first["event"] == "webhook attempt failed"
    assert (first["department"], first["status"], first["attempt"]) == ("water", 503, 1)
    assert "answered 503" in first["error"]
    assert first["case_id"] == case_id
    assert first["delivery_id"] == delivery_id
    due = delivery(pg_engine, delivery_id).next_attempt_at
    assert due is not None
    assert datetime.fromisoformat(first["next_attempt_at"]) == due

    second = attempt(pg_engine, delivery_id, departments)
    assert second["status"] is None
    assert "timeout" in second["error"]

    departments.add("water", f"http://127.0.0.1:{free_port()}/hooks")  # nobody listens
    last = attempt(pg_engine, delivery_id, departments)
    assert last["event"] == "webhook attempt failed; giving up"
    assert "ConnectError" in last["error"]
    assert last["next_attempt_at"] is None
    assert delivery(pg_engine, delivery_id).state == "dead"


def test_a_gone_endpoint_is_logged_as_disabled(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
) -> None:
    departments.add("water", receiver.url)
    departments.add("ops-centre", receiver.url)
    receiver.script(Reply(410))
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    warning = attempt(pg_engine, delivery_id, departments)
    assert warning["event"].startswith("webhook endpoint gone (410)")
    assert (warning["department"], warning["status"]) == ("water", 410)
