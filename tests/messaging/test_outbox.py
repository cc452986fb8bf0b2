"""The transactional outbox: published after commit (all of it), never after a rollback,
and whatever the broker did not take is sent by the relay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from worker.clock import FrozenClock, now, use_clock
from worker.db.models import OutboxMessage
from worker.db.session import make_engine, session_factory
from worker.messaging.outbox import enqueue, flush_marks, relay


def _published(engine: Engine) -> dict[str, bool]:
    flush_marks()
    with session_factory(engine)() as session:
        rows = session.scalars(select(OutboxMessage)).all()
        return {row.payload["n"]: row.published_at is not None for row in rows}


def test_every_message_of_a_transaction_is_published_after_commit(
    pg_engine: Engine, service: dict[str, str]
) -> None:
    with session_factory(pg_engine)() as session, session.begin():
        enqueue(session, "closeloop.timers.relay_outbox", {"n": "before"})
        with session.begin_nested():  # releasing a SAVEPOINT is not the commit
            enqueue(session, "closeloop.timers.relay_outbox", {"n": "inside"})
        assert _published(pg_engine) == {}  # nothing visible, nothing sent yet
        enqueue(session, "closeloop.timers.relay_outbox", {"n": "after"})
    assert _published(pg_engine) == {"before": True, "inside": True, "after": True}


def test_a_rolled_back_savepoint_keeps_the_rest(pg_engine: Engine, service: dict[str, str]) -> None:
    with session_factory(pg_engine)() as session, session.begin():
        enqueue(session, "closeloop.timers.relay_outbox", {"n": "kept"})
        savepoint = session.begin_nested()
        enqueue(session, "closeloop.timers.relay_outbox", {"n": "undone"})
        savepoint.rollback()
    assert _published(pg_engine) == {"kept": True}


def test_nothing_is_sent_for_a_rolled_back_change(
    pg_engine: Engine, service: dict[str, str]
) -> None:
    with session_factory(pg_engine)() as session:
        session.begin()
        enqueue(session, "closeloop.timers.relay_outbox", {"n": "gone"})
        session.rollback()
    assert _published(pg_engine) == {}


def test_the_relay_sends_what_was_left_unpublished(
    pg_engine: Engine, service: dict[str, str]
) -> None:
    with session_factory(pg_engine)() as session, session.begin():
        session.add(
            OutboxMessage(task_name="closeloop.timers.relay_outbox", payload={"n": "stuck"})
        )
    assert _published(pg_engine) == {"stuck": False}
    assert relay(pg_engine) == 0  # too fresh: the after-commit hook may still be on it
    previous = use_clock(FrozenClock(now() + timedelta(seconds=30)))
    try:
        assert relay(pg_engine) == 1
    finally:
        use_clock(previous)
    assert _published(pg_engine) == {"stuck": True}


def test_publishing_waits_for_the_session_s_connection_to_be_back_in_the_pool(
    pg_url: str, service: dict[str, str]
) -> None:
    """As many committing requests as the pool has connections: publishing must not need a
    second connection while the first is still held, or each waits on the others until the
    pool's timeout. A pool of one shows it at once."""
    engine = make_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=3)
    try:
        started = time.monotonic()
        with session_factory(engine)() as session, session.begin():
            enqueue(session, "closeloop.timers.relay_outbox", {"n": "one"})
        assert time.monotonic() - started < 2, "publishing waited for a second connection"
        assert _published(engine) == {"one": True}
    finally:
        engine.dispose()


FIRST_COMMIT = """
import sys
from tests.support.factories import HOTLINE, incident
from worker.db.migrate import upgrade
from worker.db.session import make_engine, session_factory
from worker.stages.intake import accept_incident

url = sys.argv[1]
upgrade(url)
with session_factory(make_engine(url))() as session, session.begin():
    accept_incident(session, incident(), actor=HOTLINE)
print("committed")
"""


def test_a_fresh_process_s_first_commit_with_a_message_does_not_fail(tmp_path: Path) -> None:
    """The first message a process queues brings in the Celery app, which installs session
    listeners; done during the after-commit hooks, that made the commit raise in its caller."""
    url = f"sqlite:///{tmp_path / 'first.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSELOOP_")}
    env["CLOSELOOP_AUDIT_KEYS"] = os.environ["CLOSELOOP_AUDIT_KEYS"]  # the events are sealed
    ran = subprocess.run(
        [sys.executable, "-c", FIRST_COMMIT, url],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() == "committed"
