"""A webhook delivery's lifecycle: its states, the one table of allowed moves, and the one
function that applies a move. Nothing else writes `Delivery.state`.

A delivery is born `pending` (`open_delivery`), is `queued` by beat's scan (or a supervisor's retry
now) with its send message, `sending` while a worker holds its claim, and ends `delivered` or
`dead`; a failure or a held attempt puts it back to `pending`, a replay brings a delivered or
dead one back to `pending`. `queued` and `sending` are leases: one that runs out is taken over
(queued or claimed again). A delivery's outcomes go on its case's timeline
(`worker.webhooks.audit`); its leases are in its attempt log.

The attempt's own rows are read and written with prebuilt plain statements (`Sending`,
`read`, `move`): they are most of what an attempt costs, and an ORM load and flush cost
several times what the statements do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from worker.clock import now
from worker.db.guard import ConcurrentChange, flush_guarded
from worker.db.models import Delivery, DeliveryAttempt


class DeliveryState(StrEnum):
    pending = "pending"
    queued = "queued"
    sending = "sending"
    delivered = "delivered"
    dead = "dead"


D = DeliveryState
DELIVERY_TRANSITIONS: dict[D, frozenset[D]] = {
    D.pending: frozenset({D.pending, D.queued, D.sending, D.dead}),  # pending again: held
    D.queued: frozenset({D.queued, D.sending, D.pending, D.dead}),
    D.sending: frozenset({D.queued, D.sending, D.pending, D.delivered, D.dead}),
    D.delivered: frozenset({D.pending}),
    D.dead: frozenset({D.pending}),
}
WAITING = (D.pending.value, D.queued.value, D.sending.value)


class DeliveryMoveRefused(Exception):
    def __init__(self, delivery_id: str, current: str, requested: str) -> None:
        allowed = ", ".join(sorted(DELIVERY_TRANSITIONS[D(current)]))
        super().__init__(
            f"delivery {delivery_id} is '{current}' and cannot move to '{requested}' "
            f"(from '{current}' it can move to: {allowed})"
        )


@dataclass
class Sending:
    """A delivery's row as this attempt read it: what the attempt needs, and the columns it
    changes, which `move` puts back under the row's version."""

    id: str
    webhook_id: str
    case_id: str
    department: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    attempts_before_replay: int
    version: int
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


_DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]
_ATTEMPTS: Table = DeliveryAttempt.__table__  # type: ignore[assignment]
_CHANGING = ("state", "attempts", "next_attempt_at", "last_status", "last_error", "delivered_at")
_READ = select(*(_DELIVERIES.c[name] for name in Sending.__dataclass_fields__)).where(
    _DELIVERIES.c.id == bindparam("key")
)
_WRITE = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("key"), _DELIVERIES.c.version == bindparam("read"))
    .values({name: bindparam(name) for name in (*_CHANGING, "version", "updated_at")})
)
_ADD_ATTEMPT = insert(_ATTEMPTS)


def read(session: Session, delivery_id: str) -> Sending | None:
    row = session.connection().execute(_READ, {"key": delivery_id}).one_or_none()
    return None if row is None else Sending(*row)


def _write(session: Session, delivery: Sending) -> None:
    """Write the changing columns back, if the row is still at the version read (else
    `ConcurrentChange`: another worker claimed it, or the lease ran out and it moved on)."""
    moved = session.connection().execute(
        _WRITE,
        {
            **{name: getattr(delivery, name) for name in _CHANGING},
            "key": delivery.id,
            "read": delivery.version,
            "version": delivery.version + 1,
            "updated_at": now(),
        },
    )
    if moved.rowcount != 1:
        raise ConcurrentChange("delivery", delivery.id)
    delivery.version += 1


def add_attempt(session: Session, delivery_id: str, attempt_no: int, **values: Any) -> None:
    """One row of the delivery's attempt log (`DeliveryAttempt`)."""
    session.connection().execute(
        _ADD_ATTEMPT,
        {
            "delivery_id": delivery_id,
            "attempt_no": attempt_no,
            "status_code": None,
            "error": None,
            "duration_ms": None,
            **values,
        },
    )


_ADD = insert(_DELIVERIES)


def open_delivery(session: Session, row: dict[str, Any]) -> None:
    """A delivery's birth: its row, `pending`."""
    session.connection().execute(_ADD, {**row, "state": D.pending.value})


def move(session: Session, delivery: Sending | Delivery, to: DeliveryState, **changes: Any) -> None:
    """Move `delivery` to `to` with the other columns that change with it, under its version
    guard: `ConcurrentChange` if another worker moved it since it was read. A row read for an
    attempt (`Sending`) is written with a plain statement; an ORM object is flushed."""
    if to not in DELIVERY_TRANSITIONS[D(delivery.state)]:
        raise DeliveryMoveRefused(delivery.id, delivery.state, to.value)
    for name, value in changes.items():
        setattr(delivery, name, value)
    delivery.state = to.value
    if isinstance(delivery, Delivery):
        flush_guarded(session, "delivery", delivery.id)
    else:
        _write(session, delivery)
