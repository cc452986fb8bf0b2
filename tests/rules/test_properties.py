"""Whatever the incident, clock and returned departments: one lead, never also assisting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rules.conftest import EXAMPLE_CITY
from worker.contracts.enums import Priority
from worker.contracts.incident import Incident
from worker.rules import decide, explain, load_ruleset

CITY = load_ruleset(EXAMPLE_CITY)
DEPARTMENTS = sorted(CITY.departments)
WORDS = ["煤气", "爆炸", "被困", "淹", "中毒", "fire", "水管", "trapped", "噪音", ""]


@st.composite
def incidents(draw: st.DrawFn) -> Incident:
    location: dict[str, Any] = {}
    if draw(st.booleans()):
        location["district"] = draw(st.sampled_from([*CITY.districts, "elsewhere"]))
    if draw(st.booleans()):
        location["grid"] = draw(st.sampled_from(sorted(CITY.grids)))
    if draw(st.booleans()):
        location["longitude"] = draw(st.floats(118.6, 118.9))
        location["latitude"] = draw(st.floats(32.0, 32.2))
    return Incident.model_validate(
        {
            "source": draw(st.sampled_from(["hotline", "monitor", "app"])),
            "category": draw(st.sampled_from([*CITY.categories, "unknown.thing"])),
            # A title of only white space is refused by the contract (it strips): keep one.
            "title": (draw(st.sampled_from(WORDS)) + draw(st.text(max_size=20))).strip() or "x",
            "priority_hint": draw(st.none() | st.sampled_from(list(Priority))),
            "location": location,
            "attributes": draw(
                st.sampled_from([{}, {"sensor_type": "pressure"}, {"sensor_type": 1}])
            ),
        }
    )


clocks = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)
excluded = st.frozensets(st.sampled_from(DEPARTMENTS), max_size=6)


@settings(max_examples=400, deadline=None)
@given(incident=incidents(), now=clocks, exclude=excluded)
def test_exactly_one_lead_never_assisting(
    incident: Incident, now: datetime, exclude: frozenset[str]
) -> None:
    decision = decide(CITY, incident, now, exclude=exclude)
    assert decision.lead in CITY.departments
    assert decision.lead not in decision.assisting
    assert len(decision.assisting) == len(set(decision.assisting))
    assert not (set(decision.assisting) & exclude)
    assert decision.lead not in exclude or decision.route_path == ["catch-all"]
    assert decision.acknowledge_due_at <= decision.resolve_due_at
    assert (
        decision == explain(CITY, incident, now, exclude=exclude).decision
    )  # the index changes nothing
