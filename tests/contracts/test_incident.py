"""The incident contract: what it accepts, what it refuses and why, and text round-trips."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from tests.support.factories import HOTLINE, incident
from worker.contracts.incident import Incident
from worker.db.models import Case
from worker.db.session import session_factory
from worker.stages.intake import accept_incident

CHINESE = "燃气泄漏！请马上派人 —— 东城区朝阳门内大街 12 号楼 3 单元，住户闻到很浓的煤气味。😷"


def test_chinese_round_trips_through_json() -> None:
    filed = incident(title="煤气味很浓", description=CHINESE)
    again = Incident.model_validate_json(filed.model_dump_json())
    assert again == filed
    assert again.description == CHINESE


def test_chinese_round_trips_through_the_store(any_engine: Engine) -> None:
    filed = incident(
        title="煤气味很浓", description=CHINESE, location={"address": "朝阳门内大街12号"}
    )
    with session_factory(any_engine)() as session, session.begin():
        case_id = accept_incident(session, filed, actor=HOTLINE).case.id
    with session_factory(any_engine)() as session:
        case = session.get_one(Case, case_id)
        assert (case.title, case.description, case.address) == (
            "煤气味很浓",
            CHINESE,
            "朝阳门内大街12号",
        )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"description": "x" * 4001}, "description"),
        ({"title": ""}, "title"),
        ({"category": "Water Pipe"}, "category"),
        ({"source": ""}, "source"),
        ({"location": {"latitude": 91, "longitude": 0}}, "location.latitude"),
        ({"location": {"latitude": 39.9}}, "location"),
        ({"occurred_at": "2026-11-24T10:00:00"}, "occurred_at"),
        ({"occurred_at": "1764000000"}, "occurred_at"),
        ({"occurred_at": 1764000000}, "occurred_at"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"attachments": ["not a url"]}, "attachments.0"),
        ({"attachments": [f"https://x.cn/{i}.jpg" for i in range(11)]}, "attachments"),
        ({"reporter": {"phone": "call me"}}, "reporter.phone"),
        ({"reporter": {"email": "nobody"}}, "reporter.email"),
        ({"priority_hint": "asap"}, "priority_hint"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        incident(**overrides)
    fields = {".".join(str(p) for p in error["loc"]) for error in refused.value.errors()}
    assert field in fields


def test_description_of_exactly_4000_characters_is_accepted() -> None:
    assert len(incident(description="水" * 4000).description) == 4000


def test_occurred_at_may_be_a_little_ahead_of_the_server_s_clock_but_not_more() -> None:
    from worker.clock import now

    ahead = now() + timedelta(minutes=50)
    assert incident(occurred_at=ahead.isoformat()).occurred_at == ahead
    with pytest.raises(ValidationError, match="check its UTC offset"):
        incident(occurred_at=(now() + timedelta(hours=8)).isoformat())
