"""The monitor stage: triage, priority from the rules, duplicates folded into the open case."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.factories import HOTLINE, incident
from worker.clock import FrozenClock, use_clock
from worker.contracts.enums import CaseState
from worker.db.models import Case, OutboxMessage
from worker.db.session import session_factory
from worker.ledger.audit import timeline, verify
from worker.rules import Ruleset, load_ruleset
from worker.stages.intake import accept_incident
from worker.stages.triage import metres_between, triage
from worker.tasks.names import DISPATCH

RULES = Path(__file__).resolve().parents[2] / "routing_rules"


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


def _file(engine: Engine, **overrides: Any) -> str:
    with session_factory(engine)() as session, session.begin():
        return accept_incident(session, incident(**overrides), actor=HOTLINE).case.id


def _triage(engine: Engine, case_id: str, ruleset: Ruleset) -> object:
    with session_factory(engine)() as session, session.begin():
        return triage(session, case_id, ruleset)


def _case(engine: Engine, case_id: str) -> Case:
    with session_factory(engine)() as session:
        return session.get_one(Case, case_id)


def test_received_case_is_triaged_and_sent_on_to_dispatch(
    pg_engine: Engine, ruleset: Ruleset
) -> None:
    case_id = _file(pg_engine, category="gas.leak", title="  楼道里   闻到很浓的煤气味 ")
    _triage(pg_engine, case_id, ruleset)
    case = _case(pg_engine, case_id)
    assert case.state == CaseState.triaged
    assert case.priority == "critical"
    assert case.title == "楼道里 闻到很浓的煤气味"
    with session_factory(pg_engine)() as session:
        queued = session.scalars(
            select(OutboxMessage.task_name).where(OutboxMessage.case_id == case_id)
        ).all()
        assert DISPATCH in queued
        events = timeline(session, case_id)
    assert [e.action for e in events] == ["case.received", "case.triaged"]
    assert events[-1].rules_version == ruleset.version


def test_triage_twice_changes_nothing(pg_engine: Engine, ruleset: Ruleset) -> None:
    case_id = _file(pg_engine)
    assert _triage(pg_engine, case_id, ruleset) is not None
    assert _triage(pg_engine, case_id, ruleset) is None
    assert _case(pg_engine, case_id).audit_seq == 2


NEAR = {"latitude": 32.0300, "longitude": 118.7800, "district": "gulou"}
# about 110 m north of NEAR
CLOSE = {"latitude": 32.0310, "longitude": 118.7800, "district": "gulou"}
# about 1.1 km north of NEAR
FAR = {"latitude": 32.0400, "longitude": 118.7800, "district": "gulou"}


def test_distances_are_what_the_map_says() -> None:
    assert 100 < metres_between(32.03, 118.78, 32.031, 118.78) < 120
    assert 1_050 < metres_between(32.03, 118.78, 32.04, 118.78) < 1_150


def test_a_repeat_nearby_is_merged_into_the_open_case(pg_engine: Engine, ruleset: Ruleset) -> None:
    first = _file(pg_engine, category="water.pipe_burst", location=NEAR)
    _triage(pg_engine, first, ruleset)
    second = _file(pg_engine, category="water.pipe_burst", location=CLOSE, title="又一处漏水")
    _triage(pg_engine, second, ruleset)
    merged, original = _case(pg_engine, second), _case(pg_engine, first)
    assert merged.state == CaseState.merged
    assert merged.merged_into_id == first
    assert original.reporter_count == 2
    with session_factory(pg_engine)() as session:
        assert timeline(session, second)[-1].data == {"merged_into": first}
        folded = timeline(session, first)[-1]
        assert folded.action == "case.duplicate_folded"
        assert folded.data == {"duplicate": second, "reporter_count": 2}
    assert verify(pg_engine).ok


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"category": "water.pipe_burst", "location": FAR}, "beyond the 300 m radius"),
        ({"category": "water.outage", "location": CLOSE}, "another category"),
    ],
)
def test_not_a_duplicate(
    pg_engine: Engine, ruleset: Ruleset, overrides: dict[str, Any], why: str
) -> None:
    first = _file(pg_engine, category="water.pipe_burst", location=NEAR)
    _triage(pg_engine, first, ruleset)
    second = _file(pg_engine, **overrides)
    _triage(pg_engine, second, ruleset)
    assert _case(pg_engine, second).state == CaseState.triaged, why
    assert _case(pg_engine, first).reporter_count == 1


def test_outside_the_time_window_is_a_new_case(pg_engine: Engine, ruleset: Ruleset) -> None:
    first = _file(pg_engine, category="gas.leak", location=NEAR)
    _triage(pg_engine, first, ruleset)
    clock = FrozenClock(_case(pg_engine, first).received_at + timedelta(hours=2, minutes=1))
    previous = use_clock(clock)
    try:
        second = _file(pg_engine, category="gas.leak", location=CLOSE)
        _triage(pg_engine, second, ruleset)
    finally:
        use_clock(previous)
    assert _case(pg_engine, second).state == CaseState.triaged


def test_closed_cases_do_not_swallow_new_reports(pg_engine: Engine, ruleset: Ruleset) -> None:
    first = _file(pg_engine, category="water.pipe_burst", location=NEAR)
    _triage(pg_engine, first, ruleset)
    from tests.support.factories import walk_to

    walk_to(pg_engine, first, [CaseState.cancelled])
    second = _file(pg_engine, category="water.pipe_burst", location=CLOSE)
    _triage(pg_engine, second, ruleset)
    assert _case(pg_engine, second).state == CaseState.triaged


def test_without_coordinates_the_same_address_is_the_same_place(
    pg_engine: Engine, ruleset: Ruleset
) -> None:
    where = {"address": "鼓楼区 中山路 12 号", "district": "gulou"}
    first = _file(pg_engine, category="water.pipe_burst", location=where)
    _triage(pg_engine, first, ruleset)
    second = _file(
        pg_engine,
        category="water.pipe_burst",
        location={**where, "address": "鼓楼区  中山路 12 号"},
    )
    _triage(pg_engine, second, ruleset)
    assert _case(pg_engine, second).merged_into_id == first


def test_with_only_a_district_nothing_is_folded(pg_engine: Engine, ruleset: Ruleset) -> None:
    """A district is too wide to be "the same place": without coordinates or an address, two
    reports of the same kind stay two cases."""
    first = _file(pg_engine, category="water.pipe_burst", location={"district": "gulou"})
    _triage(pg_engine, first, ruleset)
    second = _file(pg_engine, category="water.pipe_burst", location={"district": "gulou"})
    _triage(pg_engine, second, ruleset)
    assert _case(pg_engine, second).state == CaseState.triaged
    assert _case(pg_engine, first).reporter_count == 1
