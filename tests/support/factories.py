"""Build incidents and cases for tests with sensible defaults."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind, CaseState
from worker.contracts.incident import Incident
from worker.db.models import Case
from worker.db.session import session_factory
from worker.ledger.lifecycle import transition
from worker.stages.intake import accept_incident

HOTLINE = Actor(kind=ActorKind.hotline, id="hotline-test")
SYSTEM = Actor(kind=ActorKind.system, id="test")


def incident(**overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "source": "hotline",
        "category": "water.pipe_burst",
        "title": "自来水管爆裂 burst pipe",
        "description": "朝阳路12号门前水管爆裂，水流到马路上。",
        "location": {
            "latitude": 32.03,
            "longitude": 118.78,
            "district": "gulou",
            "grid": "gulou-01",
        },
    }
    fields.update(overrides)
    return Incident.model_validate(fields)


def filed_case(engine: Engine, **overrides: Any) -> str:
    """File an incident and commit; returns the new case id."""
    with session_factory(engine)() as session, session.begin():
        return accept_incident(session, incident(**overrides), actor=HOTLINE).case.id


def walk_to(engine: Engine, case_id: str, path: list[CaseState]) -> None:
    """Move a case along `path`, one committed transition each."""
    for state in path:
        with session_factory(engine)() as session, session.begin():
            case = session.get_one(Case, case_id)
            transition(session, case, state, actor=SYSTEM)
