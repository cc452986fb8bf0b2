"""A department endpoint's health: disabled after 410 Gone, and its circuit breaker.

After `webhook_circuit_failures` failures in a row the circuit opens for the cool-down:
deliveries due meanwhile are held (not attempted, not counted). When the cool-down is over,
the first delivery due goes as the probe (half-open) while the others wait for its outcome;
a good answer closes the circuit and lets the held deliveries go at once, a bad one opens it
again. The row is locked while read for a decision, so two workers never both probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.db.models import Delivery, WebhookEndpoint
from worker.webhooks.endpoints import Endpoint


@dataclass(frozen=True)
class Gate:
    """May a delivery to this endpoint go now? If not: held until when, or disabled why."""

    go: bool
    probe: bool = False
    hold_until: datetime | None = None
    disabled: str | None = None


def endpoint_state(session: Session, endpoint: Endpoint) -> WebhookEndpoint:
    """The endpoint's row, locked for this transaction; made on first use, and made afresh
    when the rules give the department a new URL (a new endpoint, nothing against it)."""
    state = session.get(WebhookEndpoint, endpoint.department, with_for_update=True)
    if state is None:
        try:
            with session.begin_nested():
                state = WebhookEndpoint(
                    department=endpoint.department, url=endpoint.url, consecutive_failures=0
                )
                session.add(state)
        except IntegrityError:
            state = session.get(
                WebhookEndpoint, endpoint.department, with_for_update=True, populate_existing=True
            )
            assert state is not None
    if state.url != endpoint.url:
        state.url = endpoint.url
        reset(state)
    return state


def reset(state: WebhookEndpoint) -> None:
    state.disabled_at = None
    state.disabled_reason = None
    state.consecutive_failures = 0
    state.circuit_open_until = None


def gate(state: WebhookEndpoint, at: datetime, probe_lease: timedelta) -> Gate:
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


def note_success(session: Session, state: WebhookEndpoint, at: datetime) -> None:
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


def note_failure(
    state: WebhookEndpoint, at: datetime, *, threshold: int, cooldown: timedelta
) -> bool:
    """Count a failure; True when it opened (or re-opened) the circuit."""
    state.consecutive_failures += 1
    if state.consecutive_failures >= threshold:
        state.circuit_open_until = at + cooldown
        return True
    return False


def disable(state: WebhookEndpoint, at: datetime, reason: str) -> None:
    state.disabled_at = at
    state.disabled_reason = reason
    state.circuit_open_until = None
