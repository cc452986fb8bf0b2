"""A department URL's credentials (`user:password@`, `?api_key=`) are written nowhere: not to
the audit store, not to any other table a response reads, not to the webhook that tells the
operations centre, not to an API response, not to a log line."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tests.support.scripted_receiver import Receiver, Reply
from tests.webhooks.conftest import Departments, case_with_task, drive, queue
from worker.api.app import create_app
from worker.auth import Role, create_token
from worker.db.models import AuditEvent, Delivery, DeliveryAttempt, OutboxMessage, WebhookEndpoint
from worker.db.session import session_factory, transaction
from worker.logging import configure_logging
from worker.webhooks import send_delivery

PASSWORD = "hunter2-pw"
KEY = "k3y-0f-the-water-dept"


def _with_credentials(url: str) -> str:
    return url.replace("http://", f"http://water:{PASSWORD}@") + f"?api_key={KEY}&v=2"


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        yield stream
    finally:
        configure_logging("INFO", "json")


def _stored_text(engine: Engine) -> str:
    """Every row a response or a later reader can see, as one text."""
    with session_factory(engine)() as session:
        rows: list[object] = []
        for event in session.scalars(select(AuditEvent)):
            rows.append(event.data)
        for found in session.scalars(select(Delivery)):
            rows += [found.payload, found.last_error]
        rows += [a.error for a in session.scalars(select(DeliveryAttempt))]
        rows += [m.payload for m in session.scalars(select(OutboxMessage))]
        rows += [e.disabled_reason for e in session.scalars(select(WebhookEndpoint))]
    return json.dumps(rows, default=str, ensure_ascii=False)


def _responses(case_id: str) -> str:
    with TestClient(create_app()) as client:
        with transaction() as session:
            made = create_token(session, Role.supervisor)
        auth = {"Authorization": f"Bearer {made.token}"}
        answers = [
            client.get(f"/v1/cases/{case_id}", headers=auth),
            client.get("/v1/deliveries", headers=auth),
            client.get("/v1/deliveries", params={"state": "dead"}, headers=auth),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    return "\n".join(a.text for a in answers)


def _assert_hidden(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert KEY not in text


def test_a_410_writes_no_credential_anywhere(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    log: io.StringIO,
) -> None:
    ops = Receiver()
    try:
        departments.add("water", _with_credentials(receiver.url))
        [ops_secret] = departments.add("ops-centre", ops.url)
        receiver.script(Reply(410))
        case_id, task_id = case_with_task(pg_engine)
        gone_id = queue(pg_engine, case_id, task_id)

        assert send_delivery(pg_engine, gone_id, endpoints=departments) == "disabled"
        assert drive(pg_engine, departments) == ["delivered"]  # the notice to ops
        [notice] = ops.received
        body = notice.verify(ops_secret)
        # What is left says where it went, not how to get in.
        assert body["data"]["url"] == receiver.url + ("?api_key=[redacted]&v=[redacted]")
        with session_factory(pg_engine)() as session:
            [disabled] = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "delivery.endpoint_disabled")
            )
        assert disabled.data["url"] == body["data"]["url"]
        _assert_hidden(notice.body.decode(), _stored_text(pg_engine), _responses(case_id))
        assert "HTTP Request: POST" in log.getvalue()  # httpx's line is there, made safe
        _assert_hidden(log.getvalue())
    finally:
        ops.close()


@pytest.mark.parametrize(
    "reply",
    [
        Reply(302, headers={"Location": f"https://sso.example.cn/login?token={KEY}"}),
        Reply(500, body=f"cannot POST http://water:{PASSWORD}@x/hooks?api_key={KEY}".encode()),
        Reply(hang=5),  # the timeout's error
    ],
    ids=["redirect", "error-body", "timeout"],
)
def test_a_failed_attempt_writes_no_credential_anywhere(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    log: io.StringIO,
    reply: Reply,
) -> None:
    departments.add("water", _with_credentials(receiver.url))
    receiver.script(reply)
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "retry"
    _assert_hidden(_stored_text(pg_engine), _responses(case_id), log.getvalue())


def test_an_unreachable_endpoint_writes_no_credential_anywhere(
    settings: Callable[..., None], pg_engine: Engine, departments: Departments, log: io.StringIO
) -> None:
    # Nothing listens on port 9 of loopback: httpx's error names the request it failed.
    departments.add("water", f"http://water:{PASSWORD}@127.0.0.1:9/hooks?api_key={KEY}")
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "retry"
    _assert_hidden(_stored_text(pg_engine), _responses(case_id), log.getvalue())
