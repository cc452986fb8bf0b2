"""Whatever bytes land on the intake queue, the real consumer takes them once and ends them:
a case, or a dead letter that keeps the bytes exactly. Not a loop, whatever the bytes are (a
NUL, broken UTF-8, a NUL hidden in an envelope's fields), by the reading path or the
redelivery cap's; and if the dead letter itself cannot be written, it is parked in Redis, not
given back to the queue."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from structlog.testing import capture_logs

from worker.db.models import DeadLetter
from worker.db.session import session_factory
from worker.messaging.intake_queue import IntakeConsumers
from worker.messaging.reliable_queue import fingerprint

CAP = 2

# What a hostile or broken producer sends: any bytes; bytes that nearly parse (a NUL or an
# invalid UTF-8 sequence inside JSON); kombu's envelope with anything at all in its fields.
_any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.just("a\x00b")
_nearly_json = st.builds(
    lambda head, junk, tail: b'{"source": "app", "title": "' + head + junk + tail + b'"}',
    st.binary(max_size=10),
    st.sampled_from([b"\x00", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\\u0000"]),
    st.binary(max_size=10),
)
_envelope = st.builds(
    lambda body, kind, encoding, message_id, header: orjson.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-type": kind,
            "content-encoding": encoding,
            "headers": {header: header},
            "properties": {"body_encoding": "base64", "message_id": message_id},
        }
    ),
    st.binary(max_size=40),
    st.sampled_from(["application/json", "text/json", "a\x00b"]) | _any_text,
    st.sampled_from(["utf-8", "latin-1", "utf-16", "\x00"]) | _any_text,
    _any_text,
    _any_text,
)
BAD_BYTES = st.binary(max_size=200) | _nearly_json | _envelope


@pytest.fixture
def consumers(service: dict[str, str]) -> Iterator[IntakeConsumers]:
    running = IntakeConsumers(threads=1, heartbeat_timeout=60.0, cap=CAP)  # no watch rounds
    running.start()
    yield running
    running.stop()


def _letters(engine: Engine, raw: bytes) -> int:
    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).where(DeadLetter.raw == raw)) or 0


def _wait(condition: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(0.01)


def _idle(consumers: IntakeConsumers) -> bool:
    client = consumers.queue.client
    return client.llen(consumers.queue.queue_key) == 0 and consumers.queue.held() == 0


@pytest.mark.parametrize("path", ["reading", "redelivery cap"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=BAD_BYTES)
def test_any_bytes_end_as_one_dead_letter_that_keeps_them(
    consumers: IntakeConsumers, pg_engine: Engine, path: str, raw: bytes
) -> None:
    queue = consumers.queue
    before = _letters(pg_engine, raw)
    if path == "redelivery cap":
        # As if consumers had died with it CAP + 1 times: the next take ends it.
        queue.client.hincrby(f"{queue.namespace}:takes", fingerprint(raw), CAP + 1)
    queue.client.lpush(queue.queue_key, raw)
    _wait(lambda: _letters(pg_engine, raw) > before, f"a dead letter of {raw!r}")
    _wait(lambda: _idle(consumers), "the consumer to finish with it")
    assert _letters(pg_engine, raw) == before + 1
    assert queue.client.llen(consumers.parked_key) == 0
    with session_factory(pg_engine)() as session:
        letter = session.scalars(
            select(DeadLetter).where(DeadLetter.raw == raw).order_by(DeadLetter.id.desc())
        ).first()
    assert letter is not None
    assert letter.kind == "intake"
    assert "\x00" not in letter.body + letter.reason + json.dumps(letter.details)
    if path == "redelivery cap":
        assert f"taken {CAP + 1} times without being filed" in letter.reason


def test_a_dead_letter_that_cannot_be_written_is_parked_once_then_written(
    consumers: IntakeConsumers, pg_engine: Engine
) -> None:
    raw = b'{"title": "\x00"'
    queue = consumers.queue
    with pg_engine.begin() as connection:  # the write fails for real: no such table
        connection.execute(text("ALTER TABLE dead_letters RENAME TO dead_letters_away"))
    try:
        with capture_logs() as logs:
            queue.client.lpush(queue.queue_key, raw)
            _wait(lambda: queue.client.llen(consumers.parked_key) == 1, "the letter parked")
            _wait(lambda: _idle(consumers), "the consumer to finish with it")
            time.sleep(1.5)  # time enough to take it again, were it given back
            assert consumers.write_parked_letters() == 0  # the database still refuses it
            assert consumers.write_parked_letters() == 0
        assert queue.client.llen(consumers.parked_key) == 1
        assert _idle(consumers)
        errors = [entry["event"] for entry in logs if entry["log_level"] == "error"]
        assert errors == [
            "cannot write a dead letter to the database; parked in Redis until it can be",
            "a parked dead letter still cannot be written; it stays in Redis",
        ]
    finally:
        with pg_engine.begin() as connection:
            connection.execute(text("ALTER TABLE dead_letters_away RENAME TO dead_letters"))
    assert consumers.write_parked_letters() == 1
    assert queue.client.llen(consumers.parked_key) == 0
    assert _letters(pg_engine, raw) == 1
