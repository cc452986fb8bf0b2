"""A department endpoint's health: disabled after 410 Gone, and its circuit breaker.

After `webhook_circuit_failures` failures in a row the circuit opens for the cool-down:
deliveries due meanwhile are held (not attempted, not counted). When the cool-down is over,
the first delivery due goes as the probe (half-open) while the others wait for its outcome;
a good answer closes the circuit and lets the held deliveries go at once, a bad one opens it
again. The row is locked while read for a decision, so two workers never both probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.clock import now
from worker.db.models import Delivery, WebhookEndpoint
from worker.webhooks.endpoints import Endpoint


@dataclass(frozen=True)
class Gate:
    """May a delivery to this endpoint go now? If not: held until when, or disabled why."""

    go: bool
    probe: bool = False
    hold_until: datetime | None = None
    disabled: str | None = None


@dataclass
class Health:
    """An endpoint's row (`WebhookEndpoint`) as this transaction locked it. The functions
    below change it in memory; `save` writes back what changed. Plain statements, not ORM
    objects: every webhook attempt reads it twice, and an ORM load costs several times more."""

    department: str
    url: str
    disabled_at: datetime | None
    disabled_reason: str | None
    consecutive_failures: int
    circuit_open_until: datetime | None
    read: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def values(self) -> tuple[Any, ...]:
        """The columns `save` writes, as they are now."""
        return tuple(getattr(self, name) for name in _COLUMNS)


_ENDPOINTS: Table = WebhookEndpoint.__table__  # type: ignore[assignment]
_COLUMNS = ("url", "disabled_at", "disabled_reason", "consecutive_failures", "circuit_open_until")
_LOCK = (
    select(_ENDPOINTS.c.department, *(_ENDPOINTS.c[name] for name in _COLUMNS))
    .where(_ENDPOINTS.c.department == bindparam("department"))
    .with_for_update()
)
_SAVE = (
    update(_ENDPOINTS)
    .where(_ENDPOINTS.c.department == bindparam("key"))
    .values({name: bindparam(name) for name in (*_COLUMNS, "updated_at")})
)
_CREATE = insert(_ENDPOINTS)


def lock(session: Session, department: str) -> Health | None:
    """The department's endpoint row, locked for this transaction; None if it has none yet."""
    row = session.connection().execute(_LOCK, {"department": department}).one_or_none()
    if row is None:
        return None
    health = Health(*row)
    health.read = health.values()
    return health


def save(session: Session, health: Health) -> None:
    """Write what changed since `lock` (nothing, usually: a good answer to a closed circuit)."""
    values = health.values()
    if values == health.read:
        return
    changed = dict(zip(_COLUMNS, values, strict=True))
    session.connection().execute(_SAVE, {"key": health.department, **changed, "updated_at": now()})
    health.read = values


def endpoint_state(session: Session, endpoint: Endpoint) -> Health:
    """The endpoint's row, locked for this transaction; made on first use, and made afresh
    when the rules give the department a new URL (a new endpoint, nothing against it)."""
    health = lock(session, endpoint.department)
    if health is None:
        try:
            with session.begin_nested():
                session.connection().execute(
                    _CREATE,
                    {
                        "department": endpoint.department,
                        "url": endpoint.url,
                        "consecutive_failures": 0,
                        "updated_at": now(),
                    },
                )
        except IntegrityError:
            pass  # another worker made it first: lock theirs
        health = lock(session, endpoint.department)
        assert health is not None
    if health.url != endpoint.url:
        health.url = endpoint.url
        reset(health)
    return health


def reset(state: Health) -> None:
    state.disabled_at = None
    state.disabled_reason = None
    state.consecutive_failures = 0
    state.circuit_open_until = None


def gate(state: Health, at: datetime, probe_lease: timedelta) -> Gate:
    if state.disabled_at is not None:
        return Gate(go=False, disabled=state.disabled_reason or "endpoint disabled")
    open_until = state.circuit_open_until
    if open_until is None:
        return Gate(go=True)
    if open_until > at:
        return Gate(go=False, hold_until=open_until)
    # Half-open: this delivery is the probe; the others are held until its lease ends.
    state.circuit_open_until = at + probe_lease
    return Gate(go=True, probe=True)


def note_success(session: Session, state: Health, at: datetime) -> None:
    held_until = state.circuit_open_until
    state.consecutive_failures = 0
    state.circuit_open_until = None
    if held_until is not None:
        # Deliveries held by the open circuit were set to exactly its end: let them go now.
        session.execute(
            update(Delivery)
            .where(
                Delivery.department == state.department,
                Delivery.state == "pending",
                Delivery.next_attempt_at == held_until,
            )
            .values(next_attempt_at=at, version=Delivery.version + 1)
            .execution_options(synchronize_session=False)
        )


def note_failure(state: Health, at: datetime, *, threshold: int, cooldown: timedelta) -> bool:
    """Count a failure; True when it opened (or re-opened) the circuit."""
    state.consecutive_failures += 1
    if state.consecutive_failures >= threshold:
        state.circuit_open_until = at + cooldown
        return True
    return False


def disable(state: Health, at: datetime, reason: str) -> None:
    state.disabled_at = at
    state.disabled_reason = reason
    state.circuit_open_until = None
