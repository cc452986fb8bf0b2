"""Reading a queued incident: kombu's envelope or the bare incident, and every way a message
can be unusable, each with a reason a person can act on."""

from __future__ import annotations

import base64
import json

import pytest

from worker.idempotency import QUEUE_SCOPE, Key
from worker.messaging.intake_queue import (
    MAX_MESSAGE_BYTES,
    BadMessage,
    Message,
    Outcome,
    handle,
    open_message,
    read_incident,
)
from worker.messaging.reliable_queue import Taken

INCIDENT = {"source": "app", "category": "gas.leak", "title": "煤气味", "external_id": "x-1"}


def envelope(body: bytes, **overrides: object) -> bytes:
    message: dict[str, object] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {},
        "properties": {"message_id": "m-1", "body_encoding": "base64", "delivery_tag": "t"},
    }
    message.update(overrides)
    return json.dumps(message).encode()


def test_kombus_envelope() -> None:
    message = open_message(envelope(json.dumps(INCIDENT, ensure_ascii=False).encode()))
    assert message.idempotency_key == Key(QUEUE_SCOPE, "queue:m-1")
    assert read_incident(message).title == "煤气味"


def test_an_idempotency_key_header_wins_over_the_message_id() -> None:
    raw = envelope(json.dumps(INCIDENT).encode(), headers={"idempotency-key": "k-9"})
    assert open_message(raw).idempotency_key == Key(QUEUE_SCOPE, "queue:k-9")


def test_a_bare_incident_is_the_message() -> None:
    message = open_message(json.dumps(INCIDENT, ensure_ascii=False).encode())
    assert message.idempotency_key is None
    assert read_incident(message).external_id == "x-1"


def test_a_declared_encoding_is_honoured() -> None:
    body = json.dumps({**INCIDENT, "title": "Café"}, ensure_ascii=False).encode("latin-1")
    message = open_message(envelope(body, **{"content-encoding": "latin-1"}))
    assert read_incident(message).title == "Café"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "cannot decode the message (not JSON)"),
        (b"\xff\xfe garbage", "cannot decode the message (not JSON)"),
        (envelope(b"{not json"), "cannot decode the message (application/json, utf-8)"),
        (envelope("煤气".encode("gbk")), "cannot decode the message (application/json, utf-8)"),
        (envelope(b"{}", **{"content-type": "text/plain"}), "incidents are application/json"),
        (envelope(b"{}", **{"content-encoding": "klingon"}), "unknown encoding"),
        (json.dumps({"body": "%%%", "properties": {"body_encoding": "base64"}}).encode(),
         "bad base64 body"),
        (json.dumps({"body": 7, "properties": {}}).encode(), "body is not text"),
        (envelope(json.dumps({**INCIDENT, "category": 7}).encode()),
         "not a valid incident: category"),
        (envelope(json.dumps([INCIDENT]).encode()), "not a valid incident"),
        (envelope(json.dumps({**INCIDENT, "title": "a\u0000b"}).encode()), "NUL character"),
        (envelope(b" " * (MAX_MESSAGE_BYTES + 1)), "is over 262144 bytes"),
        (b"[" * (MAX_MESSAGE_BYTES * 2), "is over 262144 bytes"),
    ],
)  # fmt: skip
def test_unusable_messages_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(BadMessage) as caught:
        read_incident(open_message(raw))
    assert reason in str(caught.value)


def test_reasons_never_quote_the_citizens_data() -> None:
    bad = {**INCIDENT, "reporter": {"phone": "13912345678"}, "category": 7}
    with pytest.raises(BadMessage) as caught:
        read_incident(Message(body=json.dumps(bad).encode()))
    assert "13912345678" not in str(caught.value)


def test_a_message_id_reused_for_another_incident_is_a_dead_letter(
    service: dict[str, str],
) -> None:
    from sqlalchemy import func, select

    from worker.db.models import Case, DeadLetter
    from worker.db.session import session_factory

    first = envelope(json.dumps(INCIDENT).encode())
    other = envelope(json.dumps({**INCIDENT, "category": "water.pipe_burst"}).encode())
    parked: list[bytes] = []
    assert handle(Taken(first, 1), 5, parked.append) is Outcome.filed
    assert handle(Taken(first, 1), 5, parked.append) is Outcome.filed  # a redelivery
    assert handle(Taken(other, 1), 5, parked.append) is Outcome.dead_lettered
    assert not parked
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        [dead] = session.scalars(select(DeadLetter))
    assert "Idempotency-Key 'queue:m-1' was already used for a different incident" in dead.reason
