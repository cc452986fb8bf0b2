"""Standard Webhooks signatures, checked the way a department checks them: with the
`standardwebhooks` library on the receiving end of a real HTTP request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.scripted_receiver import Receiver, new_secret
from tests.support.service import ROOT
from tests.webhooks.conftest import Departments, case_with_task, delivery, queue
from worker.clock import FrozenClock
from worker.config import reset_settings_cache
from worker.webhooks import (
    Endpoint,
    EndpointUnusable,
    endpoint_for,
    endpoint_from_env,
    ops_department,
    send_delivery,
)
from worker.webhooks.signing import parse_secrets, signed_headers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ()),
        ("", ()),
        ("whsec_a", ("whsec_a",)),
        ("whsec_a whsec_b", ("whsec_a", "whsec_b")),
        ("whsec_a,whsec_b", ("whsec_a", "whsec_b")),
        (" whsec_a ,  whsec_b\n", ("whsec_a", "whsec_b")),
    ],
)
def test_secrets_in_a_variable(raw: str | None, expected: tuple[str, ...]) -> None:
    assert parse_secrets(raw) == expected


def test_during_rotation_either_secret_verifies_and_nothing_else_does(
    settings: Callable[..., None], pg_engine: Engine, receiver: Receiver
) -> None:
    new, old = new_secret(), new_secret()
    departments = Departments()
    departments.add("water", receiver.url, new, old)
    case_id, task_id = case_with_task(pg_engine)
    assert send_delivery(pg_engine, queue(pg_engine, case_id, task_id), endpoints=departments) == (
        "delivered"
    )
    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.verify(new)["type"] == "task.assigned"  # a department that moved on
    assert request.verify(old)["data"]["task"]["id"] == task_id  # one that has not yet
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        request.verify(new_secret())


def test_a_stale_timestamp_is_refused() -> None:
    secret = new_secret()
    body = b'{"type":"task.assigned"}'
    at = datetime.now(UTC) - timedelta(minutes=10)
    headers = signed_headers("msg_stale", body, [secret], at=at)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, headers)


def test_a_tampered_body_is_refused() -> None:
    secret = new_secret()
    headers = signed_headers("msg_1", b'{"amount":1}', [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"amount":2}', headers)


def test_an_endpoint_without_its_secret_is_never_sent_to(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variable = "CLOSELOOP_SECRET_TEST_WATER"
    monkeypatch.delenv(variable, raising=False)

    def from_env(department: str) -> Endpoint:
        return endpoint_from_env(department, receiver.url, variable)

    with pytest.raises(EndpointUnusable, match=variable):
        from_env("water")
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    assert send_delivery(pg_engine, delivery_id, endpoints=from_env) == "retry"
    assert receiver.received == []
    failed = delivery(pg_engine, delivery_id)
    assert failed.attempts == 1
    assert variable in (failed.last_error or "")
    assert failed.attempt_log[0].status_code is None

    secret = new_secret()
    monkeypatch.setenv(variable, f"{secret},{new_secret()}")
    clock.advance(timedelta(seconds=2))
    assert send_delivery(pg_engine, delivery_id, endpoints=from_env) == "delivered"
    [request] = receiver.received
    request.verify(secret)


def test_the_rules_name_the_endpoint_and_the_variable_holds_the_secrets(
    rules_at: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules_at(ROOT / "routing_rules")
    monkeypatch.delenv("CLOSELOOP_OPS_DEPARTMENT", raising=False)
    reset_settings_cache()
    new, old = new_secret(), new_secret()
    monkeypatch.setenv("CLOSELOOP_SECRET_WATER", f"{new} {old}")
    water = endpoint_for("water")
    assert water.url == "http://127.0.0.1:9900/hooks/water"
    assert water.secrets == (new, old)
    monkeypatch.delenv("CLOSELOOP_SECRET_WATER")
    with pytest.raises(
        EndpointUnusable, match="set the environment variable CLOSELOOP_SECRET_WATER"
    ):
        endpoint_for("water")
    with pytest.raises(EndpointUnusable, match="no-such-department is not in the routing rules"):
        endpoint_for("no-such-department")
    assert ops_department() == "ops-centre"  # the catch-all's lead
