"""A small city for table-driven tests: each test adds the routes it is about."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from worker.contracts.incident import Incident
from worker.rules import Ruleset, load_ruleset

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY_10AM = datetime(2025, 1, 15, 10, 0, tzinfo=SHANGHAI)
EXAMPLE_CITY = Path(__file__).resolve().parents[2] / "routing_rules"


def _department(dept: str) -> dict[str, Any]:
    return {
        "id": dept,
        "name": {"zh": dept, "en": dept.title()},
        "url": f"http://127.0.0.1:9900/hooks/{dept}",
        "secret_env": f"CLOSELOOP_SECRET_{dept.upper().replace('-', '_')}",
    }


def _square(west: float, south: float, east: float, north: float) -> list[list[float]]:
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


BASE: dict[str, Any] = {
    "departments": [
        _department(d)
        for d in ("ops", "water", "gas", "fire", "roads", "env", "gov-a", "gov-b", "boss")
    ],
    "categories": [
        {
            "group": "water",
            "name": {"zh": "水", "en": "Water"},
            "categories": [
                {"code": "water.burst", "name": {"zh": "爆管", "en": "Burst"}},
                {"code": "water.outage", "name": {"zh": "停水", "en": "Outage"}},
            ],
        },
        {
            "group": "gas",
            "name": {"zh": "气", "en": "Gas"},
            "categories": [
                {
                    "code": "gas.leak",
                    "name": {"zh": "泄漏", "en": "Leak"},
                    "duplicates": {"radius_m": 200, "window": "2h"},
                }
            ],
        },
        {
            "group": "roads",
            "name": {"zh": "路", "en": "Roads"},
            "categories": [{"code": "roads.pothole", "name": {"zh": "坑", "en": "Pothole"}}],
        },
    ],
    "districts": [
        {
            "id": "a",
            "name": {"zh": "甲区", "en": "A"},
            "government": "gov-a",
            "grids": [{"id": "a-1"}, {"id": "a-2"}],
        },
        {
            "id": "b",
            "name": {"zh": "乙区", "en": "B"},
            "government": "gov-b",
            "grids": [{"id": "b-1"}],
        },
        {"id": "c", "name": {"zh": "丙区", "en": "C"}},
    ],
    "areas": [
        {
            "id": "square",
            "name": {"zh": "方", "en": "Square with a hole"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [_square(0, 0, 10, 10), _square(4, 4, 6, 6)],
            },
        },
        {
            "id": "islands",
            "name": {"zh": "岛", "en": "Two islands"},
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [[_square(20, 20, 21, 21)], [_square(30, 30, 31, 31)]],
            },
        },
    ],
    "windows": [
        {"id": "night", "timezone": "Asia/Shanghai", "start": "22:00", "end": "06:00"},
        {
            "id": "friday-night",
            "timezone": "Asia/Shanghai",
            "start": "22:00",
            "end": "06:00",
            "weekdays": ["fri"],
        },
        {
            "id": "office",
            "timezone": "UTC",
            "start": "09:00",
            "end": "17:00",
            "weekdays": ["mon", "tue"],
        },
    ],
    "catch_all": {"lead": "ops", "acknowledge_within": "2h", "resolve_within": "7d"},
}


def write_rules(folder: Path, routes: list[dict[str, Any]], **sections: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    content = {**BASE, **sections, "routes": routes}
    (folder / "rules.yaml").write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False))
    return folder


@pytest.fixture
def make_rules(tmp_path: Path) -> Callable[..., Ruleset]:
    counter = iter(range(10_000))

    def make(routes: list[dict[str, Any]], **sections: Any) -> Ruleset:
        return load_ruleset(write_rules(tmp_path / f"set{next(counter)}", routes, **sections))

    return make


def incident(**fields: Any) -> Incident:
    data: dict[str, Any] = {"source": "hotline", "category": "water.burst", "title": "水管爆了"}
    data.update(fields)
    return Incident.model_validate(data)


def route(route_id: str, lead: str | None = "water", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": route_id}
    if lead is not None:
        data["lead"] = lead
    data.setdefault("acknowledge_within", "1h")
    data.setdefault("resolve_within", "24h")
    data.update(fields)
    return data
