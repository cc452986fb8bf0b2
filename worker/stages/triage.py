"""Triage: the first look at a received case.

Normalise what was filed, set the priority the rules give it, and fold a duplicate into the
open case it repeats (same category, within the category's radius and time window). A
duplicate becomes `merged`, linked to the open case, whose reporter count grows and whose
timeline says so; anything else becomes `triaged` and goes on to dispatch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind, CaseState, Priority
from worker.contracts.incident import Incident, Location
from worker.db.models import Case
from worker.ledger.lifecycle import OPEN_CASE_STATES, record, transition
from worker.messaging.outbox import enqueue
from worker.rules import Decision, DuplicatePolicy, Ruleset, decide
from worker.tasks.names import DISPATCH

ACTOR = Actor(kind=ActorKind.system, id="monitor")
EARTH_RADIUS_M = 6_371_008.8
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Triaged:
    state: CaseState
    merged_into: str | None = None
    dispatch_message: int | None = None  # the outbox message that sends it on to dispatch
    # The case as triage wrote it (triaged, not merged), for a caller that dispatches it
    # straight away without reading it again.
    case: Case | None = field(default=None, compare=False, repr=False)


def triage(
    session: Session, case_id: str, ruleset: Ruleset, *, hold_dispatch: bool = False
) -> Triaged | None:
    """Triage `case_id` if it is still `received`; None if someone already did (idempotent).

    A triaged case's dispatch message is published when the transaction commits; with
    `hold_dispatch` it is held for the caller to take and dispatch the case itself.
    """
    case = session.get(Case, case_id)
    if case is None or case.state != CaseState.received:
        return None
    _normalise(case)
    decision = decide(ruleset, incident_of(case), case.received_at)
    case.priority = decision.priority.value
    original = _duplicate_of(session, case, decision.duplicate_policy)
    if original is not None:
        return _merge(session, case, original, decision)
    transition(
        session,
        case,
        CaseState.triaged,
        actor=ACTOR,
        data={"priority": case.priority, "category": case.category},
        rules_version=decision.ruleset_version,
    )
    message = enqueue(session, DISPATCH, {"case_id": case.id}, case_id=case.id, hold=hold_dispatch)
    return Triaged(CaseState.triaged, dispatch_message=message, case=case)


def incident_of(case: Case) -> Incident:
    """The incident as the rules see it, rebuilt from the stored case."""
    return Incident.model_construct(
        source=case.source,
        external_id=case.external_id,
        category=case.category,
        title=case.title,
        description=case.description,
        location=Location.model_construct(
            latitude=case.latitude,
            longitude=case.longitude,
            address=case.address,
            district=case.district,
            grid=case.grid,
        ),
        reporter=None,
        priority_hint=Priority(case.priority_hint) if case.priority_hint else None,
        occurred_at=case.occurred_at,
        attachments=[],
        attributes=dict(case.attributes),
    )


def _normalise(case: Case) -> None:
    case.title = _SPACES.sub(" ", case.title).strip()
    case.description = case.description.strip()
    if case.address:
        case.address = _SPACES.sub(" ", case.address).strip()


def _duplicate_of(session: Session, case: Case, policy: DuplicatePolicy | None) -> Case | None:
    """The earliest open case this one repeats, or None.

    Only cases received before this one qualify, so two reports triaged at the same moment
    can never be folded into each other.
    """
    lat, lon = case.latitude, case.longitude
    if policy is None or ((lat is None or lon is None) and not case.address):
        return None  # no policy, or nothing to tell "here" by: no query to build
    window: timedelta = policy.window
    query = (
        select(Case)
        .where(
            Case.id != case.id,
            Case.category == case.category,
            Case.state.in_([s.value for s in OPEN_CASE_STATES]),
            Case.received_at >= case.received_at - window,
            Case.received_at <= case.received_at,
        )
        .order_by(Case.received_at, Case.id)
    )
    if lat is not None and lon is not None:
        query = query.where(*_bounding_box(lat, lon, policy.radius_m))
        for candidate in session.scalars(query.limit(200)):
            assert candidate.latitude is not None
            assert candidate.longitude is not None
            distance = metres_between(lat, lon, candidate.latitude, candidate.longitude)
            if distance <= policy.radius_m:
                return candidate
        return None
    # Without coordinates only the very same address (as normalised) counts as "here".
    return session.scalars(query.where(Case.address == case.address).limit(1)).first()


def _bounding_box(lat: float, lon: float, radius_m: float) -> list[ColumnElement[bool]]:
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = math.degrees(radius_m / (EARTH_RADIUS_M * max(math.cos(math.radians(lat)), 1e-6)))
    return [
        Case.latitude.between(lat - dlat, lat + dlat),
        Case.longitude.between(lon - dlon, lon + dlon),
    ]


def metres_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _merge(session: Session, case: Case, original: Case, decision: Decision) -> Triaged:
    case.merged_into_id = original.id
    transition(
        session,
        case,
        CaseState.merged,
        actor=ACTOR,
        action="case.merged",
        data={"merged_into": original.id},
        rules_version=decision.ruleset_version,
    )
    original.reporter_count += 1
    record(
        session,
        original,
        actor=ACTOR,
        action="case.duplicate_folded",
        data={"duplicate": case.id, "reporter_count": original.reporter_count},
        rules_version=decision.ruleset_version,
    )
    return Triaged(CaseState.merged, merged_into=original.id)
