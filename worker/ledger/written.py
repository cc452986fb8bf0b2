"""What the ledger wrote, told to whoever listens once the transaction commits.

The ledger calls nothing above it: it notes each fact it writes in the session, and when the
transaction commits the facts go to the listeners that subscribed (the metrics' counters);
when it rolls back they are dropped. An event written as an ORM object inside a savepoint is
noted with its object, and a savepoint's rollback, which leaves the object transient, takes it
out of what is told.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from worker.db.models import AuditEvent, Case

_PENDING = "closeloop.ledger.written"


@dataclass(frozen=True)
class Written:
    """One event the ledger wrote, with what a listener may want to know of its case."""

    action: str
    to_state: str | None
    category: str | None = None
    district: str | None = None
    lead_department: str | None = None


Listener = Callable[[list[Written]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Be told, after each commit, what the ledger wrote in it (at most once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)
    _install()


def note(
    session: Session, action: str, to_state: str | None = None, case: Case | None = None
) -> None:
    """An event written with a plain statement (never inside a savepoint)."""
    session.info.setdefault(_PENDING, []).append((None, _written(action, to_state, case)))


def _written(action: str, to_state: str | None, case: Case | None) -> Written:
    if case is None:
        return Written(action, to_state)
    # What the session already holds of the case: reading an attribute not loaded (a new
    # case's lead, say) would cost a query on the busiest path for a fact nobody needs.
    known = inspect(case).dict
    return Written(
        action,
        to_state,
        known.get("category"),
        known.get("district"),
        known.get("lead_department"),
    )


_installed: list[bool] = []


def _install() -> None:
    if _installed:
        return
    event.listen(Session, "after_flush", _note_objects)
    event.listen(Session, "after_commit", _tell)
    event.listen(Session, "after_rollback", _forget)
    _installed.append(True)


def _note_objects(session: Session, _: Any) -> None:
    objects = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not objects:
        return
    cases = {obj.id: obj for obj in session if isinstance(obj, Case)}
    pending = session.info.setdefault(_PENDING, [])
    for audit in objects:
        pending.append((audit, _written(audit.action, audit.to_state, cases.get(audit.case_id))))


def _tell(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its events are told when the whole transaction commits
    pending = session.info.pop(_PENDING, [])
    if not pending or not _listeners:
        return
    # An event flushed inside a savepoint that was rolled back is transient again.
    facts = [fact for audit, fact in pending if audit is None or inspect(audit).persistent]
    for listener in _listeners:
        listener(facts)


def _forget(session: Session) -> None:
    # A savepoint's rollback makes its own events transient, which `_tell` skips; only the
    # whole transaction's rollback drops everything noted.
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)
