"""POST /v1/monitor/alertmanager with the example city's rules, on real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from tests.api.conftest import Headers, TokenMaker
from tests.api.test_intake import count_cases
from tests.support.factories import walk_to
from worker.contracts.enums import CaseState as C
from worker.db.models import Case, DeadLetter
from worker.db.session import session_factory

FIRING_SINCE = "2026-03-01T08:59:30.123456789Z"
ZERO_TIME = "0001-01-01T00:00:00Z"


def alert(
    status: str = "firing",
    fingerprint: str = "6f3c0a5e9b1d2c47",
    starts_at: str = FIRING_SINCE,
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "WaterMainBurst",
            "district": "gulou",
            "grid": "gulou-02",
            "sensor_id": "P-0042",
            **labels,
        },
        "annotations": {"summary": "主管压力骤降", "description": "Pressure fell 60% in 30 s."},
        "startsAt": starts_at,
        "endsAt": "2026-03-01T09:20:00Z" if status == "resolved" else ZERO_TIME,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=pressure",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    statuses = {a["status"] for a in alerts}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="WaterMainBurst"}',
        "truncatedAlerts": 0,
        "status": "firing" if "firing" in statuses else "resolved",
        "receiver": "closeloop",
        "groupLabels": {"alertname": "WaterMainBurst"},
        "commonLabels": {"alertname": "WaterMainBurst"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@pytest.fixture
def monitor(token: TokenMaker) -> Headers:
    return token("monitor", name="prometheus-city")


def post(client: TestClient, headers: Headers, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
    answer = client.post("/v1/monitor/alertmanager", json=notification(*alerts), headers=headers)
    assert answer.status_code == 202, answer.text
    outcomes: list[dict[str, Any]] = answer.json()["alerts"]
    return outcomes


def test_a_firing_alert_opens_a_mapped_case(
    client: TestClient, monitor: Headers, engine: Engine, supervisor: Headers
) -> None:
    [outcome] = post(client, monitor, alert())
    assert outcome["outcome"] == "opened"
    with session_factory(engine)() as session:
        case = session.get_one(Case, outcome["case_id"])
        assert case.source == "monitor"
        assert case.external_id == "alertmanager:6f3c0a5e9b1d2c47"
        assert case.category == "water.pipe_burst"
        assert (case.district, case.grid) == ("gulou", "gulou-02")
        assert case.priority_hint == "critical"
        assert case.title == "WaterMainBurst: 主管压力骤降"
        assert case.attributes["sensor_id"] == "P-0042"
        assert case.occurred_at is not None
        assert case.occurred_at.isoformat() == "2026-03-01T08:59:30.123456+00:00"
    shown = client.get(f"/v1/cases/{outcome['case_id']}", headers=supervisor).json()
    assert shown["timeline"][0]["actor"] == {"kind": "monitor", "id": "prometheus-city"}


def test_repeat_notifications_find_the_same_case(
    client: TestClient, monitor: Headers, engine: Engine
) -> None:
    [first] = post(client, monitor, alert())
    [again] = post(client, monitor, alert())
    [flapped] = post(client, monitor, alert(starts_at="2026-03-01T09:05:00Z"))
    assert again == {**first, "outcome": "repeat"}
    assert flapped["case_id"] == first["case_id"]
    assert count_cases(engine) == 1


def test_resolved_is_noted_on_the_timeline_once(
    client: TestClient, monitor: Headers, hotline: Headers
) -> None:
    [fired] = post(client, monitor, alert())
    resolved = alert(status="resolved")
    [noted] = post(client, monitor, resolved)
    [noted_again] = post(client, monitor, resolved)
    assert noted["outcome"] == noted_again["outcome"] == "resolved"
    assert noted["case_id"] == fired["case_id"]
    case = client.get(f"/v1/cases/{fired['case_id']}", headers=hotline).json()
    assert case["state"] == "received"
    assert [e["action"] for e in case["timeline"]] == ["case.received", "alert.resolved"]
    event = case["timeline"][1]
    assert event["from_state"] is None
    assert event["to_state"] is None
    assert event["data"] == {
        "fingerprint": "6f3c0a5e9b1d2c47",
        "alertname": "WaterMainBurst",
        "starts_at": "2026-03-01T08:59:30.123456+00:00",
        "ends_at": "2026-03-01T09:20:00+00:00",
    }


def test_resolved_for_an_unknown_alert_is_ignored(
    client: TestClient, monitor: Headers, engine: Engine
) -> None:
    [outcome] = post(client, monitor, alert(status="resolved", fingerprint="feedfacecafe0001"))
    assert outcome["outcome"] == "unknown"
    assert outcome["case_id"] is None
    assert count_cases(engine) == 0


def test_the_alert_firing_again_after_its_case_closed_opens_a_new_case(
    client: TestClient, monitor: Headers, engine: Engine
) -> None:
    [first] = post(client, monitor, alert())
    walk_to(
        engine,
        first["case_id"],
        [C.triaged, C.dispatched, C.accepted, C.resolved, C.closed],
    )
    [late_repeat] = post(client, monitor, alert())
    assert late_repeat == {**first, "outcome": "repeat"}
    [recurred] = post(client, monitor, alert(starts_at="2026-04-02T03:00:00Z"))
    [recurred_again] = post(client, monitor, alert(starts_at="2026-04-02T03:00:00Z"))
    assert recurred["outcome"] == "opened"
    assert recurred["case_id"] != first["case_id"]
    assert recurred_again == {**recurred, "outcome": "repeat"}
    [resolved] = post(client, monitor, alert(status="resolved", starts_at="2026-04-02T03:00:00Z"))
    assert resolved["case_id"] == recurred["case_id"]
    assert count_cases(engine) == 2


def test_one_bad_alert_does_not_cost_the_others_their_cases(
    client: TestClient, monitor: Headers, engine: Engine
) -> None:
    too_long = alert(fingerprint="00000000000000bad")
    too_long["annotations"]["description"] = "x" * 5000
    gas = alert(fingerprint="0000000000000gas1", alertname="GasConcentrationHigh")
    refused, opened = post(client, monitor, too_long, gas)
    assert refused["outcome"] == "refused"
    assert "description" in refused["detail"]
    assert opened["outcome"] == "opened"
    with session_factory(engine)() as session:
        assert session.get_one(Case, opened["case_id"]).category == "gas.leak"
        letters = session.scalars(select(DeadLetter).where(DeadLetter.kind == "alert")).all()
        assert len(letters) == 1
        assert "00000000000000bad" in letters[0].body
        assert session.scalar(select(func.count()).select_from(Case)) == 1


def test_an_unmapped_alert_falls_back_to_the_default_category(
    client: TestClient, monitor: Headers, engine: Engine
) -> None:
    [outcome] = post(client, monitor, alert(alertname="DiskAlmostFull", district="atlantis"))
    with session_factory(engine)() as session:
        case = session.get_one(Case, outcome["case_id"])
    assert case.category == "general.monitor_alert"
    assert case.district is None


def test_the_payload_is_checked(client: TestClient, monitor: Headers) -> None:
    body = notification(alert())
    body["version"] = "3"
    del body["alerts"][0]["fingerprint"]
    answer = client.post("/v1/monitor/alertmanager", json=body, headers=monitor)
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"version", "alerts.0.fingerprint"}


def test_only_a_monitor_token_may_post_alerts(client: TestClient, token: TokenMaker) -> None:
    for role in ("hotline", "supervisor", "admin"):
        answer = client.post(
            "/v1/monitor/alertmanager", json=notification(alert()), headers=token(role)
        )
        assert answer.status_code == 403, role


def test_two_sensors_at_one_place_make_one_case(
    client: TestClient, monitor: Headers, engine: Engine
) -> None:
    """Two pressure sensors 100 m apart trip at one burst main: the route's duplicate policy
    (500 m, 2 h) folds the second alert into the first one's case, by the coordinates the
    alerts' labels carry."""
    from worker.rules import registry
    from worker.stages.triage import triage

    place = {"sensor_type": "pressure", "latitude": "32.0587", "longitude": "118.7965"}
    near = {**place, "latitude": "32.0596", "sensor_id": "P-0043"}
    [first] = post(client, monitor, alert(fingerprint="a1", **place))
    [second] = post(client, monitor, alert(fingerprint="b2", **near))
    assert second["outcome"] == "opened"
    for outcome in (first, second):
        with session_factory(engine)() as session, session.begin():
            triage(session, outcome["case_id"], registry.get())
    with session_factory(engine)() as session:
        folded = session.get_one(Case, second["case_id"])
        kept = session.get_one(Case, first["case_id"])
        assert (folded.state, folded.merged_into_id) == (C.merged, kept.id)
        assert (kept.latitude, kept.longitude) == (32.0587, 118.7965)
        assert kept.reporter_count == 2
