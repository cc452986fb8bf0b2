"""A supervisor's retry-now: a pending delivery's next attempt made due at once, the same
delivery and the same webhook-id, on the case's timeline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.support.scripted_receiver import Receiver, Reply
from tests.webhooks.conftest import (
    Departments,
    actions,
    case_with_task,
    count,
    delivery,
    drive,
    queue,
)
from tests.webhooks.test_dead_letters import token
from worker.api.app import create_app
from worker.cli.main import app as cli
from worker.db.models import Delivery


@pytest.fixture
def api(settings: Callable[..., None]) -> TestClient:
    settings(webhook_schedule="0s,1h,1h")  # after a failure the next try is an hour away
    return TestClient(create_app())


def failed_once(engine: Engine, receiver: Receiver, departments: Departments) -> tuple[str, str]:
    departments.add("water", receiver.url)
    receiver.script(Reply(500))
    case_id, task_id = case_with_task(engine)
    delivery_id = queue(engine, case_id, task_id)
    assert drive(engine, departments) == ["retry"]
    assert drive(engine, departments) == []  # its next attempt is an hour away
    return case_id, delivery_id


def test_retry_now_sends_a_pending_delivery_at_once_with_the_same_webhook_id(
    api: TestClient, pg_engine: Engine, receiver: Receiver, departments: Departments
) -> None:
    case_id, delivery_id = failed_once(pg_engine, receiver, departments)
    supervisor = token(pg_engine, "supervisor")

    replay = api.post(f"/v1/deliveries/{delivery_id}/replay", headers=supervisor)
    assert replay.status_code == 409
    assert "retried now" in replay.json()["detail"]

    answer = api.post(f"/v1/deliveries/{delivery_id}/retry", headers=supervisor)
    assert (answer.status_code, answer.json()) == (202, {"retried": [delivery_id]})
    assert drive(pg_engine, departments) == []  # already queued: the scan leaves it be
    assert delivery(pg_engine, delivery_id).state == "queued"
    from worker.webhooks import send_delivery

    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "delivered"

    assert len(receiver.received) == 2
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id
    assert count(pg_engine, Delivery) == 1
    assert actions(pg_engine, case_id) == [
        "delivery.failed",
        "delivery.retried_now",
        "delivery.succeeded",
    ]
    again = api.post(f"/v1/deliveries/{delivery_id}/retry", headers=supervisor)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "replay it instead" in again.json()["detail"]
    assert api.post("/v1/deliveries/nope/retry", headers=supervisor).status_code == 404


def test_only_supervisors_and_admins_retry(
    api: TestClient, pg_engine: Engine, receiver: Receiver, departments: Departments
) -> None:
    _, delivery_id = failed_once(pg_engine, receiver, departments)
    for role, department in (("hotline", None), ("department", "water"), ("monitor", None)):
        refused = api.post(
            f"/v1/deliveries/{delivery_id}/retry", headers=token(pg_engine, role, department)
        )
        assert refused.status_code == 403
    assert delivery(pg_engine, delivery_id).state == "pending"
    admin = api.post(f"/v1/deliveries/{delivery_id}/retry", headers=token(pg_engine, "admin"))
    assert admin.status_code == 202


def test_cli_retries_pending_deliveries_now(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
) -> None:
    settings(webhook_schedule="0s,1h,1h")
    case_id, delivery_id = failed_once(pg_engine, receiver, departments)
    runner = CliRunner()

    done = runner.invoke(cli, ["deliveries", "retry", delivery_id, "nope"])
    assert done.exit_code == 1, done.output
    assert f"retrying {delivery_id} now" in done.output
    assert "nope: no such delivery" in done.output
    assert "1 retried now, 1 skipped" in done.output
    assert drive(pg_engine, departments) == []
    assert delivery(pg_engine, delivery_id).state == "queued"
    twice = runner.invoke(cli, ["deliveries", "retry", delivery_id])
    assert twice.exit_code == 1
    assert "already on its way" in twice.output
    assert actions(pg_engine, case_id).count("delivery.retried_now") == 1
