"""Intake: an incident as filed becomes a case in `received`, exactly once, and the monitor
stage is told (through the outbox, in the same transaction).

A repeat of the same filing (same `Idempotency-Key` from the same caller, or same source and
external id) returns the case the first one created. The unique constraints decide races
between two repeats. The same key with a different filing is refused (`KeyReused`): the
second incident is not the first, and folding it into the first case would lose it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.contracts.audit import Actor
from worker.contracts.incident import Incident
from worker.db.models import Case, new_id
from worker.idempotency import Key, KeyReused, fingerprint
from worker.ledger.lifecycle import open_case
from worker.messaging.outbox import enqueue
from worker.tasks.names import MONITOR


@dataclass(frozen=True)
class Accepted:
    case: Case
    created: bool


def find_repeat(session: Session, incident: Incident, key: Key | None) -> Case | None:
    """The case an earlier filing with this key (or source and external id) opened; raises
    `KeyReused` when the key came with another incident."""
    if key is not None:
        found = session.scalar(
            select(Case).where(
                Case.idempotency_scope == key.scope, Case.idempotency_key == key.value
            )
        )
        if found is not None:
            if found.request_fingerprint not in (None, incident_fingerprint(incident)):
                raise KeyReused(key, "incident")
            return found
    if incident.external_id:
        return session.scalar(
            select(Case).where(
                Case.source == incident.source, Case.external_id == incident.external_id
            )
        )
    return None


def incident_fingerprint(incident: Incident) -> str:
    return fingerprint(incident.model_dump(mode="json"))


def case_from_incident(incident: Incident, key: Key | None = None) -> Case:
    where = incident.location
    return Case(
        id=new_id(),
        source=incident.source,
        external_id=incident.external_id,
        idempotency_key=key.value if key else None,
        idempotency_scope=key.scope if key else None,
        request_fingerprint=incident_fingerprint(incident) if key else None,
        category=incident.category,
        title=incident.title,
        description=incident.description,
        latitude=where.latitude,
        longitude=where.longitude,
        address=where.address,
        district=where.district,
        grid=where.grid,
        priority=(incident.priority_hint or "normal"),
        priority_hint=incident.priority_hint,
        attributes=dict(incident.attributes),
        attachments=[str(url) for url in incident.attachments],
        occurred_at=incident.occurred_at,
    )


def accept_incident(
    session: Session, incident: Incident, *, actor: Actor, idempotency_key: Key | None = None
) -> Accepted:
    """Create the case for `incident`, or return the one an earlier identical filing made.

    Most filings are new, so the case is inserted straight away, and only a clash on its
    unique keys (the same `Idempotency-Key`, or the same source and external id) looks for
    the earlier case: that saves a look-up on every new filing.
    """
    case = case_from_incident(incident, idempotency_key)
    reporter = incident.reporter
    opened = open_case(
        session,
        case,
        actor=actor,
        data={"category": incident.category, "source": incident.source, "title": incident.title},
        reporter=None
        if reporter is None
        else {
            "name": reporter.name,
            "phone": reporter.phone,
            "email": str(reporter.email) if reporter.email else None,
        },
    )
    if not opened:
        # A repeat: an earlier filing (or a concurrent one, just committed) holds the key.
        repeat = find_repeat(session, incident, idempotency_key)
        if repeat is None:
            raise RuntimeError(
                f"case {case.id} clashed with a case already there, yet no earlier filing "
                "has its keys"
            )
        return Accepted(repeat, created=False)
    enqueue(session, MONITOR, {"case_id": case.id}, case_id=case.id)
    return Accepted(case, created=True)
