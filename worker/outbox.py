"""The transactional outbox: a message is written in the same transaction as the change it
announces, and published to the broker only after that transaction commits.

`enqueue` adds the row and remembers it on the session; when the session commits, the rows are
published at once. If the broker is down then, or the process dies between commit and publish,
the rows stay unpublished and `relay` (a beat task) publishes them later. A message is never
sent for a change that rolled back. Consumers are idempotent, so a message published twice
(relay racing the after-commit hook) changes nothing the second time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm import session as orm_session

from worker.clock import now
from worker.config import get_settings
from worker.db.models import OutboxMessage
from worker.logging import get_logger

log = get_logger("closeloop.outbox")

_PENDING = "closeloop_outbox_pending"
_COMMITTED = "closeloop_outbox_committed"
_ENGINE = "closeloop_outbox_engine"


def enqueue(
    session: Session, task_name: str, payload: dict[str, Any], *, case_id: str | None = None
) -> OutboxMessage:
    # Import the Celery app now, inside the transaction: importing it installs session
    # listeners, and one installed while SQLAlchemy runs the after-commit listeners makes
    # that commit raise in its caller (the change committed, the caller sees an error).
    import worker.celery_app  # noqa: F401

    message = OutboxMessage(task_name=task_name, payload=payload, case_id=case_id)
    session.add(message)
    session.flush()
    session.info.setdefault(_PENDING, []).append(message.id)
    return message


@event.listens_for(orm_session.Session, "after_commit")
def _ready_after_commit(session: Session) -> None:
    # SQLAlchemy also calls this when a SAVEPOINT is released; only the real commit counts.
    if session.get_nested_transaction() is not None:
        return
    ids = session.info.pop(_PENDING, None)
    if ids:
        session.info[_COMMITTED] = ids
        session.info[_ENGINE] = _engine_of(session)


@event.listens_for(orm_session.Session, "after_transaction_end")
def _publish_once_released(session: Session, transaction: orm_session.SessionTransaction) -> None:
    # Not in after_commit: there the session still holds its connection, and publishing takes
    # a second one from the same pool. With as many requests committing at once as the pool
    # has connections, each would wait for another's second connection, every one of them
    # until the pool's timeout. Here the session's connection is back in the pool.
    if transaction.parent is not None:
        return
    ids = session.info.pop(_COMMITTED, None)
    engine = session.info.pop(_ENGINE, None)
    if ids and engine is not None:
        publish(engine, ids)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


@event.listens_for(orm_session.Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: orm_session.SessionTransaction) -> None:
    # A rolled-back SAVEPOINT leaves the outer transaction's messages to send; ids of rows it
    # took with it are skipped at publish time (they no longer exist).
    if not previous.nested:
        session.info.pop(_PENDING, None)


def publish(engine: Engine, ids: list[int]) -> int:
    """Send the given outbox rows to the broker and mark them published. Never raises:
    whatever could not be sent now is the relay's to send.

    One transaction: the UPDATE marks the rows (and locks them, so a relay running at the
    same moment skips them), the messages go out, then it commits. If sending fails the
    transaction rolls back and the rows stay unpublished.
    """
    from worker.celery_app import app

    if not get_settings().broker_url:
        return 0  # no broker configured in this process (a CLI, a test): the relay sends them
    try:
        with engine.begin() as connection:
            claimed = connection.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.published_at.is_(None))
                .values(published_at=now(), publish_attempts=OutboxMessage.publish_attempts + 1)
                .returning(
                    OutboxMessage.id, OutboxMessage.task_name, OutboxMessage.payload,
                    OutboxMessage.publish_attempts,
                )
            ).all()  # fmt: skip
            for message_id, task_name, payload, attempt in claimed:
                app.send_task(task_name, kwargs=payload, task_id=f"outbox-{message_id}-{attempt}")
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
