"""Durations, polygons, windows and the schema file, on their own."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from worker.contracts.export import rendered_schemas
from worker.rules.durations import format_duration, parse_duration
from worker.rules.geo import ring_problem, shape

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("15d", timedelta(days=15)),
        ("1d12h", timedelta(hours=36)),
        ("1w", timedelta(days=7)),
        ("90s", timedelta(seconds=90)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2 hours", "1.5h", "-1h", "2h 30m", "2y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=24), "24h"),
        (timedelta(hours=36), "36h"),
        (timedelta(days=7), "7d"),
        (timedelta(hours=1, minutes=30), "1h30m"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_concave_polygon() -> None:
    # A U shape: the notch between the arms is outside.
    u = shape([[[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3], [0, 0]]])
    assert u.contains(0.5, 2.5)
    assert u.contains(2.5, 2.5)
    assert u.contains(1.5, 0.5)
    assert not u.contains(1.5, 2)
    assert not u.contains(-0.1, 1)
    assert not u.contains(1.5, 3.5)


@pytest.mark.parametrize(
    ("ring", "problem"),
    [
        ([[0, 0], [1, 0], [0, 0]], "a ring needs at least 4 positions"),
        ([[0, 0], [1, 0], [1, 1], [0, 1]], "a ring must end where it starts"),
        ([[0, 0], [200, 0], [1, 1], [0, 0]], "off the globe"),
        ([[0, 0], [1, 1], [1, 1], [0, 0]], "at least 3 distinct corners"),
    ],
)
def test_ring_problems(ring: list[list[float]], problem: str) -> None:
    found = ring_problem(ring)
    assert found is not None
    assert problem in found


def test_routing_rules_schema_is_up_to_date() -> None:
    rendered = rendered_schemas()["routing-rules.schema.json"]
    assert (SCHEMAS / "routing-rules.schema.json").read_text(encoding="utf-8") == rendered
    schema = json.loads(rendered)
    assert schema["title"] == "closeloop routing rules file"
    assert set(schema["properties"]) >= {
        "departments",
        "categories",
        "routes",
        "catch_all",
        "monitoring",
    }
