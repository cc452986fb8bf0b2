"""Every matcher, table-driven: a route with the condition leads (water), or the catch-all does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.rules.conftest import SHANGHAI, WEDNESDAY_10AM, incident, route
from worker.rules import Ruleset, decide

FRIDAY_2330 = datetime(2025, 1, 17, 23, 30, tzinfo=SHANGHAI)
SATURDAY_0300 = datetime(2025, 1, 18, 3, 0, tzinfo=SHANGHAI)
SATURDAY_2330 = datetime(2025, 1, 18, 23, 30, tzinfo=SHANGHAI)
WEDNESDAY_0559 = datetime(2025, 1, 15, 5, 59, tzinfo=SHANGHAI)
WEDNESDAY_0600 = datetime(2025, 1, 15, 6, 0, tzinfo=SHANGHAI)
WEDNESDAY_2200 = datetime(2025, 1, 15, 22, 0, tzinfo=SHANGHAI)
MONDAY_0900_UTC = datetime(2025, 1, 13, 9, 0, tzinfo=UTC)


def at(lon: float, lat: float) -> dict[str, Any]:
    return {"location": {"longitude": lon, "latitude": lat}}


CASES: list[tuple[str, dict[str, Any], dict[str, Any], datetime, bool]] = [
    # name, match, incident fields, now, matches
    ("category exact", {"category": "water.burst"}, {}, WEDNESDAY_10AM, True),
    ("category exact other", {"category": "water.outage"}, {}, WEDNESDAY_10AM, False),
    ("category list", {"category": ["gas.leak", "water.burst"]}, {}, WEDNESDAY_10AM, True),
    ("category group", {"category": "water.*"}, {"category": "water.outage"}, WEDNESDAY_10AM, True),
    ("category other group", {"category": "gas.*"}, {}, WEDNESDAY_10AM, False),
    (
        "category unknown code in group",
        {"category": "water.*"},
        {"category": "water.new_thing"},
        WEDNESDAY_10AM,
        True,
    ),
    ("district", {"district": "a"}, {"location": {"district": "a"}}, WEDNESDAY_10AM, True),
    ("district other", {"district": "a"}, {"location": {"district": "b"}}, WEDNESDAY_10AM, False),
    ("district missing", {"district": "a"}, {}, WEDNESDAY_10AM, False),
    ("grid", {"grid": ["a-2", "b-1"]}, {"location": {"grid": "b-1"}}, WEDNESDAY_10AM, True),
    ("grid other", {"grid": "a-1"}, {"location": {"grid": "a-2"}}, WEDNESDAY_10AM, False),
    ("area inside", {"area": "square"}, at(1, 1), WEDNESDAY_10AM, True),
    ("area in the hole", {"area": "square"}, at(5, 5), WEDNESDAY_10AM, False),
    ("area between hole and edge", {"area": "square"}, at(3, 5), WEDNESDAY_10AM, True),
    ("area outside", {"area": "square"}, at(11, 5), WEDNESDAY_10AM, False),
    ("area no coordinates", {"area": "square"}, {}, WEDNESDAY_10AM, False),
    ("area multipolygon second part", {"area": "islands"}, at(30.5, 30.5), WEDNESDAY_10AM, True),
    ("area multipolygon between parts", {"area": "islands"}, at(25, 25), WEDNESDAY_10AM, False),
    (
        "priority hint",
        {"priority": ["critical", "high"]},
        {"priority_hint": "high"},
        WEDNESDAY_10AM,
        True,
    ),
    (
        "priority hint other",
        {"priority": "critical"},
        {"priority_hint": "low"},
        WEDNESDAY_10AM,
        False,
    ),
    ("priority no hint", {"priority": "normal"}, {}, WEDNESDAY_10AM, False),
    ("source", {"source": "monitor"}, {"source": "monitor"}, WEDNESDAY_10AM, True),
    ("source other", {"source": "monitor"}, {}, WEDNESDAY_10AM, False),
    (
        "keyword chinese substring",
        {"keywords": ["爆"]},
        {"title": "小区水管爆裂了"},
        WEDNESDAY_10AM,
        True,
    ),
    (
        "keyword chinese absent",
        {"keywords": ["淹"]},
        {"title": "小区水管爆裂了"},
        WEDNESDAY_10AM,
        False,
    ),
    (
        "keyword case-insensitive",
        {"keywords": "Flood"},
        {"title": "x", "description": "FLOODED street"},
        WEDNESDAY_10AM,
        True,
    ),
    (
        "keyword in description",
        {"keywords": ["被困"]},
        {"title": "电梯", "description": "有人被困"},
        WEDNESDAY_10AM,
        True,
    ),
    ("window night late", {"window": "night"}, {}, WEDNESDAY_2200, True),
    ("window night early morning", {"window": "night"}, {}, WEDNESDAY_0559, True),
    ("window night ends at six", {"window": "night"}, {}, WEDNESDAY_0600, False),
    ("window night not by day", {"window": "night"}, {}, WEDNESDAY_10AM, False),
    (
        "window night in UTC clock",
        {"window": "night"},
        {},
        datetime(2025, 1, 15, 15, 0, tzinfo=UTC),
        True,
    ),
    ("window weekday that opens it", {"window": "friday-night"}, {}, FRIDAY_2330, True),
    (
        "window after midnight belongs to friday",
        {"window": "friday-night"},
        {},
        SATURDAY_0300,
        True,
    ),
    ("window saturday night is not friday", {"window": "friday-night"}, {}, SATURDAY_2330, False),
    ("window other zone and weekdays", {"window": "office"}, {}, MONDAY_0900_UTC, True),
    ("window any of two", {"window": ["office", "night"]}, {}, WEDNESDAY_2200, True),
    (
        "attribute string",
        {"attributes": {"sensor_type": "pressure"}},
        {"attributes": {"sensor_type": "pressure"}},
        WEDNESDAY_10AM,
        True,
    ),
    (
        "attribute dotted form",
        {"attributes.sensor_type": "pressure"},
        {"attributes": {"sensor_type": "pressure"}},
        WEDNESDAY_10AM,
        True,
    ),
    (
        "attribute other value",
        {"attributes.sensor_type": "pressure"},
        {"attributes": {"sensor_type": "flow"}},
        WEDNESDAY_10AM,
        False,
    ),
    ("attribute absent", {"attributes.sensor_type": "pressure"}, {}, WEDNESDAY_10AM, False),
    (
        "attribute number",
        {"attributes.floor": 3},
        {"attributes": {"floor": 3}},
        WEDNESDAY_10AM,
        True,
    ),
    (
        "attribute bool is not 1",
        {"attributes.urgent": True},
        {"attributes": {"urgent": 1}},
        WEDNESDAY_10AM,
        False,
    ),
    (
        "attribute string is not number",
        {"attributes.floor": "3"},
        {"attributes": {"floor": 3}},
        WEDNESDAY_10AM,
        False,
    ),
    (
        "attribute any of",
        {"attributes.level": [1, 2]},
        {"attributes": {"level": 2}},
        WEDNESDAY_10AM,
        True,
    ),
    ("not holds", {"not": {"source": "monitor"}}, {}, WEDNESDAY_10AM, True),
    ("not fails", {"not": {"source": "monitor"}}, {"source": "monitor"}, WEDNESDAY_10AM, False),
    (
        "not of two needs both",
        {"not": {"source": "monitor", "district": "a"}},
        {"source": "monitor"},
        WEDNESDAY_10AM,
        True,
    ),
    (
        "all conditions must hold",
        {"category": "water.*", "district": "a"},
        {"location": {"district": "b"}},
        WEDNESDAY_10AM,
        False,
    ),
    (
        "all conditions hold",
        {"category": "water.*", "district": "a"},
        {"location": {"district": "a"}},
        WEDNESDAY_10AM,
        True,
    ),
]


@pytest.mark.parametrize(
    ("match", "fields", "now", "matches"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matcher(
    make_rules: Callable[..., Ruleset],
    match: dict[str, Any],
    fields: dict[str, Any],
    now: datetime,
    matches: bool,
) -> None:
    ruleset = make_rules([route("r", match=match)])
    decision = decide(ruleset, incident(**fields), now)
    assert decision.lead == ("water" if matches else "ops")
    assert decision.route_path == (["r"] if matches else ["catch-all"])
