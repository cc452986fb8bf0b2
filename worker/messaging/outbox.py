"""The transactional outbox: a message is written in the same transaction as the change it
announces, and published to the broker only after that transaction commits.

`enqueue` adds the row and remembers the message on the session; when the session commits, the
messages are sent at once, and the rows are marked published a moment later, a batch at a time
by a thread of the process's own (`_Marks`), so that sending costs no transaction of its own. If
the broker is down then, or the process dies between commit and send, the rows stay
unpublished and `relay` (a beat task) publishes them later. A message is never sent for a
change that rolled back. Consumers are idempotent, so a message published twice (the process
died between sending and marking, and the relay sent it again) changes nothing the second time.

A message can also be *held* (`enqueue(..., hold=True)`): written, but not published at commit,
because the process that wrote it means to do the work itself straight away (the monitor task
dispatching the case it has just triaged) and saves the trip through the broker. That work's
transaction `take`s the message, which marks it published. If that work fails, the caller
`publish`es the message at once; if the process dies first, the message is simply
unpublished, and the relay sends it like any other.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, Table, Update, bindparam, event, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm import session as orm_session

from worker.clock import now
from worker.config import get_settings
from worker.db.models import OutboxMessage
from worker.logging import get_logger

log = get_logger("closeloop.outbox")

_PENDING = "closeloop_outbox_pending"
_SAVEPOINTS = "closeloop_outbox_savepoints"
_COMMITTED = "closeloop_outbox_committed"
_ENGINE = "closeloop_outbox_engine"
# How long the marking thread lets sent messages gather before it marks them in one statement.
# Well inside the relay's five seconds; long enough that a steady trickle of cases costs one
# marking transaction per several messages instead of one per message.
MARK_EVERY_S = 0.5

_Pending = tuple[int, str, dict[str, Any]]  # outbox id, task name, payload
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
# Built once: building a statement costs more Python than sending it.
_ADD = insert(_OUTBOX).returning(_OUTBOX.c.id)


def enqueue(
    session: Session,
    task_name: str,
    payload: dict[str, Any],
    *,
    case_id: str | None = None,
    hold: bool = False,
) -> int:
    """Write a message to publish once this transaction commits; with `hold`, one the caller
    means to `take` and act on itself (the relay publishes it if that never happens).
    Returns the message's id.

    The row is written with a plain INSERT on the session's connection, not as an ORM object:
    nothing reads it back in this transaction, and the unit of work cost more than the
    statement (objects the caller has added meanwhile are flushed as usual, later)."""
    # Import the Celery app now, inside the transaction: importing it installs session
    # listeners, and one installed while SQLAlchemy runs the after-commit listeners makes
    # that commit raise in its caller (the change committed, the caller sees an error).
    import worker.tasks.app  # noqa: F401

    message_id: int = (
        session.connection()
        .execute(_ADD, {"task_name": task_name, "payload": payload, "case_id": case_id})
        .scalar_one()
    )
    if not hold:
        session.info.setdefault(_PENDING, []).append((message_id, task_name, payload))
    return message_id


def _mark_published(ids: list[int]) -> Update:
    """The rows among `ids` not yet published, marked published (one more attempt each)."""
    return (
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(ids), _OUTBOX.c.published_at.is_(None))
        .values(published_at=now(), publish_attempts=_OUTBOX.c.publish_attempts + 1)
    )


_TAKE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("message_id"), _OUTBOX.c.published_at.is_(None))
    .values(published_at=bindparam("at"), publish_attempts=_OUTBOX.c.publish_attempts + 1)
    .returning(_OUTBOX.c.id)
)


def take(session: Session, message_id: int) -> bool:
    """Take a held message to act on here, in the caller's transaction: it is marked published,
    so the relay leaves it. False if the relay has published it already (its consumer acts)."""
    marked = session.connection().execute(_TAKE, {"message_id": message_id, "at": now()})
    return marked.first() is not None


@event.listens_for(orm_session.Session, "after_transaction_create")
def _note_savepoint(session: Session, transaction: orm_session.SessionTransaction) -> None:
    # Remember how many messages were pending when a SAVEPOINT began: if it rolls back, the
    # rows written since went with it, and so must their messages.
    if transaction.nested:
        pending = session.info.get(_PENDING, ())
        session.info.setdefault(_SAVEPOINTS, {})[transaction] = len(pending)


@event.listens_for(orm_session.Session, "after_commit")
def _ready_after_commit(session: Session) -> None:
    # SQLAlchemy also calls this when a SAVEPOINT is released; only the real commit counts.
    if session.get_nested_transaction() is not None:
        return
    session.info.pop(_SAVEPOINTS, None)
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.info[_COMMITTED] = pending
        session.info[_ENGINE] = _engine_of(session)


@event.listens_for(orm_session.Session, "after_transaction_end")
def _send_once_released(session: Session, transaction: orm_session.SessionTransaction) -> None:
    # Not in after_commit: there the session still holds its connection, and marking takes
    # a second one from the same pool (the relay's way, and the marking thread's, too).
    if transaction.parent is not None:
        return
    pending = session.info.pop(_COMMITTED, None)
    engine = session.info.pop(_ENGINE, None)
    if pending and engine is not None:
        send_committed(engine, pending)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


@event.listens_for(orm_session.Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: orm_session.SessionTransaction) -> None:
    if previous.nested:
        # A rolled-back SAVEPOINT takes its own messages with it, and leaves the rest to send.
        start = session.info.get(_SAVEPOINTS, {}).pop(previous, None)
        if start is not None and _PENDING in session.info:
            del session.info[_PENDING][start:]
        return
    session.info.pop(_PENDING, None)
    session.info.pop(_SAVEPOINTS, None)


def _send(app: Any, task_name: str, payload: dict[str, Any], task_id: str) -> None:
    # The message's headers carry a printable copy of the arguments for logs and monitors;
    # an outbox payload is a few short ids, so a plain repr does what Celery's truncating
    # `saferepr` would, for a fraction of its work.
    app.send_task(
        task_name, kwargs=payload, task_id=task_id, argsrepr="()", kwargsrepr=repr(payload)
    )


def send_committed(engine: Engine, pending: list[_Pending]) -> int:
    """Send the messages of a transaction that has just committed; their rows are marked
    published shortly after, by the marking thread. Never raises: what could not be sent now
    stays unpublished, and the relay sends it."""
    from worker.tasks.app import app

    if not get_settings().broker_url:
        return 0  # no broker configured in this process (a CLI, a test): the relay sends them
    sent: list[int] = []
    try:
        for message_id, task_name, payload in pending:
            _send(app, task_name, payload, f"outbox-{message_id}-1")
            sent.append(message_id)
    except Exception as error:  # the relay will send whatever is still unpublished
        unsent = [message_id for message_id, _, _ in pending if message_id not in sent]
        log.warning("outbox send failed; the relay will retry", error=str(error), ids=unsent)
    if sent:
        _marks.add(engine, sent)
    return len(sent)


class _Marks:
    """Marks sent messages published, many in one statement, on a thread of its own.

    Until a row is marked, the relay would send its message again if it ran; it looks only
    at rows older than a few seconds, and marking takes a fraction of one. If marking fails,
    or the process ends first, the relay does send it again, and its consumer ignores it.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        # In a forked child the parent's thread is gone and its lock may have been held at the
        # fork: start afresh (the parent marks what it had waiting).
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # a flush returns only once any other one is done
        self._waiting: dict[Engine, list[int]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, engine: Engine, ids: list[int]) -> None:
        with self._lock:
            self._waiting.setdefault(engine, []).extend(ids)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="closeloop-outbox-marks", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(MARK_EVERY_S)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Mark everything sent so far, now (tests, and at exit)."""
        with self._flushing:
            with self._lock:
                batches, self._waiting = self._waiting, {}
            for engine, ids in batches.items():
                self._mark(engine, ids)

    def _mark(self, engine: Engine, ids: list[int]) -> None:
        try:
            with engine.begin() as connection:
                connection.execute(_mark_published(ids))
        except Exception as error:
            log.info(
                "could not mark sent outbox messages; the relay will send them again",
                error=str(error),
                count=len(ids),
            )


_marks = _Marks()


def flush_marks() -> None:
    """Mark every message this process has sent as published, before returning."""
    _marks.flush()


def publish(engine: Engine, ids: list[int]) -> int:
    """Send the given outbox rows to the broker and mark them published (the relay's way).
    Never raises: whatever could not be sent now is the relay's to send next time.

    One transaction: the UPDATE marks the rows (and locks them, so a relay running at the
    same moment skips them), the messages go out, then it commits. If sending fails the
    transaction rolls back and the rows stay unpublished.
    """
    from worker.tasks.app import app

    if not get_settings().broker_url:
        return 0  # no broker configured in this process (a CLI, a test): the relay sends them
    try:
        with engine.begin() as connection:
            claimed = connection.execute(
                _mark_published(ids).returning(
                    _OUTBOX.c.id, _OUTBOX.c.task_name, _OUTBOX.c.payload,
                    _OUTBOX.c.publish_attempts,
                )
            ).all()  # fmt: skip
            for message_id, task_name, payload, attempt in claimed:
                _send(app, task_name, payload, f"outbox-{message_id}-{attempt}")
    except Exception as error:  # the relay will retry whatever is still unpublished
        log.warning("outbox publish failed; the relay will retry", error=str(error), ids=ids)
        return 0
    return len(claimed)


def relay(engine: Engine, older_than: timedelta = timedelta(seconds=5), limit: int = 500) -> int:
    """Publish rows left unpublished (broker down, process died after commit)."""
    with Session(engine) as session:
        ids = list(
            session.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.published_at.is_(None),
                    OutboxMessage.created_at < now() - older_than,
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
        )
    if ids:
        log.info("relaying unpublished outbox messages", count=len(ids))
        return publish(engine, ids)
    return 0
