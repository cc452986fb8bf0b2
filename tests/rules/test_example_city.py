"""The example city's own expectation cases, and its alert mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rules.conftest import EXAMPLE_CITY, WEDNESDAY_10AM
from worker.contracts.incident import Incident
from worker.rules import decide, incident_from_alert, load_ruleset
from worker.rules.cases import run_cases

CITY = load_ruleset(EXAMPLE_CITY)


def test_example_city_cases_all_pass() -> None:
    outcome = run_cases(CITY, EXAMPLE_CITY / "cases.yaml")
    assert outcome.total >= 30
    assert [str(m) for m in outcome.misses] == []


def test_a_wrong_expectation_is_reported_as_a_miss(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        'at: "2025-01-15T10:00:00+08:00"\n'
        "cases:\n"
        "  - name: wrong on purpose\n"
        "    incident: {source: hotline, category: gas.leak, title: 煤气味}\n"
        "    expect: {lead: water, resolve_within: 2h, assisting: [fire]}\n"
    )
    [miss] = run_cases(CITY, cases).misses
    assert miss.differences == [("lead", "water", "gas")]
    assert str(miss).startswith(f"MISS wrong on purpose ({cases}:3)")


def test_alert_maps_to_an_incident_the_rules_route() -> None:
    fields = incident_from_alert(
        CITY,
        {
            "alertname": "WaterPressureLow",
            "district": "gulou",
            "grid": "gulou-02",
            "severity": "warning",
            "sensor_type": "pressure",
        },
        {"summary": "泾河路干管压力低于 0.15 MPa", "description": "P-0193 reads 0.12 MPa"},
    )
    incident = Incident.model_validate(fields)
    assert incident.category == "water.low_pressure"
    assert incident.source == "monitor"
    assert (incident.location.district, incident.location.grid) == ("gulou", "gulou-02")
    assert incident.priority_hint is not None
    assert incident.priority_hint.value == "high"
    assert incident.title == "WaterPressureLow: 泾河路干管压力低于 0.15 MPa"
    assert incident.attributes["sensor_type"] == "pressure"
    decision = decide(CITY, incident, WEDNESDAY_10AM)
    assert (decision.lead, decision.route_path) == ("water", ["utilities/pressure-sensor"])


@pytest.mark.parametrize(
    ("labels", "category", "hint", "district", "grid"),
    [
        (
            {"alertname": "GasConcentrationHigh", "severity": "info"},
            "gas.leak",
            "critical",
            None,
            None,
        ),
        ({"alertname": "SomethingNew"}, "general.monitor_alert", None, None, None),
        (
            {"alertname": "SomethingNew", "category": "roads.pothole"},
            "roads.pothole",
            None,
            None,
            None,
        ),
        (
            {"alertname": "SomethingNew", "category": "no.such"},
            "general.monitor_alert",
            None,
            None,
            None,
        ),
        (
            {"alertname": "RoadWaterlogging", "grid": "nanshan-01"},
            "roads.waterlogging",
            None,
            "nanshan",
            "nanshan-01",
        ),
        (
            {"alertname": "RoadWaterlogging", "district": "atlantis", "severity": "page"},
            "roads.waterlogging",
            "critical",
            None,
            None,
        ),
    ],
)
def test_alert_label_mapping(
    labels: dict[str, str], category: str, hint: str | None, district: str | None, grid: str | None
) -> None:
    incident = Incident.model_validate(incident_from_alert(CITY, labels, {}))
    assert incident.category == category
    assert (incident.priority_hint.value if incident.priority_hint else None) == hint
    assert (incident.location.district, incident.location.grid) == (district, grid)


def test_alert_without_monitoring_section_is_an_error(tmp_path: Path) -> None:
    from tests.rules.conftest import route, write_rules

    rules = load_ruleset(write_rules(tmp_path / "r", [route("r", "water")]))
    with pytest.raises(LookupError, match="monitoring"):
        incident_from_alert(rules, {"alertname": "X"}, {})
