"""End to end, for real: PostgreSQL, Redis, worker processes, a department's HTTP endpoint.

An incident enters (from the intake queue, or through intake's outbox), the worker triages
and dispatches it, and the department's endpoint receives its task with a signature the
`standardwebhooks` library verifies. The case's timeline shows every step.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.factories import HOTLINE, incident
from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from worker.db.models import Case, Delivery, Task
from worker.db.session import session_factory
from worker.ledger.audit import timeline, verify
from worker.messaging.broker import publish_raw
from worker.stages.intake import accept_incident

GAS_LEAK = {
    "source": "hotline",
    "external_id": "e2e-gas-1",
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "location": {"district": "gulou", "address": "鼓楼区中山路12号"},
    "reporter": {"name": "王先生", "phone": "13812345678"},
}


@pytest.fixture
def running(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(pg_url, redis_url, tmp_path) as p:
        p.start_worker()
        yield p


def _case_id(p: Pipeline, external_id: str) -> str | None:
    with session_factory(p.engine)() as session:
        return session.scalar(select(Case.id).where(Case.external_id == external_id))


def _wait_delivered(p: Pipeline, departments: set[str]) -> None:
    wait_for(
        lambda: departments <= {r.department for r in p.receiver.all()},
        timeout=60,
        what=lambda: f"webhooks to {sorted(departments)}\n{p.logs()[-4000:]}",
    )


def test_queue_incident_reaches_the_department_signed(running: Pipeline) -> None:
    publish_raw("incidents", json.dumps(GAS_LEAK, ensure_ascii=False), str(uuid.uuid4()))
    _wait_delivered(running, {"gas", "fire"})
    gas = running.receiver.for_department("gas")[0]
    assert gas.verified
    assert gas.webhook_id.startswith("msg_")
    case_id = _case_id(running, "e2e-gas-1")
    assert case_id is not None
    assert gas.body["data"]["case"]["id"] == case_id
    assert gas.body["type"] == "task.assigned"
    wait_for(lambda: _delivered_events(running, case_id) == 2, timeout=30, what="delivery audit")
    with session_factory(running.engine)() as session:
        actions = [e.action for e in timeline(session, case_id)]
    assert actions[:3] == ["case.received", "case.triaged", "case.dispatched"]
    assert actions.count("delivery.succeeded") == 2
    assert verify(running.engine).ok


def _delivered_events(p: Pipeline, case_id: str) -> int:
    with session_factory(p.engine)() as session:
        return sum(1 for e in timeline(session, case_id) if e.action == "delivery.succeeded")


def test_intake_through_the_outbox_reaches_the_department(running: Pipeline) -> None:
    with session_factory(running.engine)() as session, session.begin():
        case_id = accept_incident(
            session, incident(category="water.pipe_burst", external_id="e2e-water"), actor=HOTLINE
        ).case.id
    _wait_delivered(running, {"water"})
    assert all(r.verified for r in running.receiver.all())
    with session_factory(running.engine)() as session:
        assert session.get_one(Case, case_id).state == "dispatched"


def test_a_bad_queue_message_is_dead_lettered_and_the_next_one_still_flows(
    running: Pipeline,
) -> None:
    from worker.db.models import DeadLetter

    publish_raw("incidents", "{not json", str(uuid.uuid4()))
    publish_raw("incidents", json.dumps({**GAS_LEAK, "category": "Gas Leak!"}), str(uuid.uuid4()))
    publish_raw("incidents", json.dumps(GAS_LEAK, ensure_ascii=False), str(uuid.uuid4()))
    _wait_delivered(running, {"gas"})
    with session_factory(running.engine)() as session:
        letters = session.scalars(select(DeadLetter)).all()
        assert [letter.kind for letter in letters] == ["intake", "intake"]
        # Two consumer threads take messages at once: the letters may be written either way.
        reasons = sorted(letter.reason for letter in letters)
        assert "cannot decode" in reasons[0]
        assert "not a valid incident: category" in reasons[1]
        assert session.scalar(select(func.count()).select_from(Case)) == 1


def test_the_same_message_twice_makes_one_case_one_task_each(running: Pipeline) -> None:
    message_id = str(uuid.uuid4())
    body = json.dumps({**GAS_LEAK, "external_id": None}, ensure_ascii=False)
    publish_raw("incidents", body, message_id)
    publish_raw("incidents", body, message_id)
    _wait_delivered(running, {"gas", "fire"})
    with session_factory(running.engine)() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        assert session.scalar(select(func.count()).select_from(Task)) == 2
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2


def test_http_incident_reaches_the_department_and_the_timeline_shows_it(running: Pipeline) -> None:
    import httpx

    api = running.start_api()
    hotline = running.token("hotline")
    answer = httpx.post(
        f"{api}/v1/incidents",
        json={**GAS_LEAK, "external_id": "e2e-http"},
        headers={**hotline, "Idempotency-Key": "e2e-http-1"},
    )
    assert answer.status_code == 202, answer.text
    case_id = answer.json()["case_id"]
    assert answer.headers["location"] == f"/v1/cases/{case_id}"
    _wait_delivered(running, {"gas", "fire"})
    assert all(r.verified for r in running.receiver.all())
    wait_for(lambda: _delivered_events(running, case_id) == 2, timeout=30, what="delivery audit")
    case = httpx.get(f"{api}/v1/cases/{case_id}", headers=hotline).json()
    assert case["state"] == "dispatched"
    assert case["lead_department"] == "gas"
    assert [t["department"] for t in case["tasks"]] == ["gas", "fire"]
    actions = [event["action"] for event in case["timeline"]]
    assert actions[:3] == ["case.received", "case.triaged", "case.dispatched"]
    assert actions.count("delivery.succeeded") == 2
    assert "13812345678" not in json.dumps(case)


def test_alertmanager_alert_reaches_the_department(running: Pipeline) -> None:
    import httpx

    api = running.start_api()
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "GasConcentrationHigh",
            "district": "gulou",
            "severity": "critical",
        },
        "annotations": {"summary": "可燃气体浓度超标"},
        "startsAt": "2026-11-24T08:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph",
        "fingerprint": "e2e0001",
    }
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="GasConcentrationHigh"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "closeloop",
        "groupLabels": {"alertname": "GasConcentrationHigh"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.local",
        "alerts": [alert],
    }
    answer = httpx.post(
        f"{api}/v1/monitor/alertmanager", json=payload, headers=running.token("monitor")
    )
    assert answer.status_code == 202, answer.text
    # The lead (gas) and an assisting department get their tasks at the same time, on two
    # of the webhook worker's threads: either may arrive first, so wait for the lead's.
    wait_for(
        lambda: bool(running.receiver.for_department("gas")),
        timeout=60,
        what=lambda: running.logs()[-3000:],
    )
    assert all(r.verified for r in running.receiver.all())
