"""POST /v1/incidents on real PostgreSQL: one filing, one case, whatever the retries."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from tests.api.conftest import Headers
from tests.api.filing import PHONE, incident_body
from worker.db.models import Case, OutboxMessage, Reporter
from worker.db.session import session_factory
from worker.stages import intake
from worker.tasks.names import MONITOR


def count_cases(engine: Engine) -> int:
    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(Case)) or 0


def test_filing_answers_202_with_the_case_and_its_location(
    client: TestClient, hotline: Headers, engine: Engine
) -> None:
    answer = client.post("/v1/incidents", json=incident_body(), headers=hotline)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["state"] == "received"
    assert body["created"] is True
    assert answer.headers["location"] == f"/v1/cases/{body['case_id']}"
    with session_factory(engine)() as session:
        case = session.get_one(Case, body["case_id"])
        assert case.title == "自来水管爆裂"
        assert session.scalar(select(Reporter.phone).where(Reporter.case_id == case.id)) == PHONE
        outbox = session.scalars(
            select(OutboxMessage).where(OutboxMessage.case_id == case.id)
        ).all()
    assert [(m.task_name, m.payload) for m in outbox] == [(MONITOR, {"case_id": case.id})]


def test_chinese_text_round_trips_and_the_timeline_says_received(
    client: TestClient, hotline: Headers
) -> None:
    filed = client.post("/v1/incidents", json=incident_body(), headers=hotline).json()
    shown = client.get(f"/v1/cases/{filed['case_id']}", headers=hotline)
    assert shown.status_code == 200, shown.text
    case = shown.json()
    assert case["title"] == "自来水管爆裂"
    assert case["description"] == "朝阳路12号门前水管爆裂，水流到马路上。"
    assert [e["action"] for e in case["timeline"]] == ["case.received"]
    assert case["timeline"][0]["actor"] == {"kind": "hotline", "id": "hotline"}
    assert "reporter" not in case
    assert PHONE not in shown.text
    assert "王女士" not in shown.text


def test_same_idempotency_key_gives_the_same_case(
    client: TestClient, hotline: Headers, engine: Engine
) -> None:
    headers = {**hotline, "Idempotency-Key": "b6f0c1e2-key-1"}
    first = client.post("/v1/incidents", json=incident_body(), headers=headers)
    again = client.post("/v1/incidents", json=incident_body(), headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == {**first.json(), "created": False}
    assert again.headers["location"] == first.headers["location"]
    other = client.post("/v1/incidents", json=incident_body(), headers=hotline)
    assert other.json()["case_id"] != first.json()["case_id"]
    assert count_cases(engine) == 2


def test_same_source_and_external_id_gives_the_same_case(
    client: TestClient, hotline: Headers, engine: Engine
) -> None:
    body = incident_body(source="app", external_id="APP-2024-0001")
    first = client.post("/v1/incidents", json=body, headers=hotline).json()
    again = client.post("/v1/incidents", json=body, headers=hotline).json()
    assert again == {**first, "created": False}
    elsewhere = client.post("/v1/incidents", json={**body, "source": "web"}, headers=hotline).json()
    assert elsewhere["created"] is True
    assert count_cases(engine) == 2


def test_racing_repeats_open_one_case(
    client: TestClient, hotline: Headers, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both requests are about to insert their case at the same moment: the unique key must
    # decide the race, and the loser must answer with the winner's case.
    both_ready = threading.Barrier(2, timeout=10)
    waited: set[int] = set()
    open_case = intake.open_case

    def wait_then_open(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_ready.wait()
        return open_case(*args, **kwargs)

    monkeypatch.setattr(intake, "open_case", wait_then_open)
    headers = {**hotline, "Idempotency-Key": "race-key-1"}
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda _: client.post("/v1/incidents", json=incident_body(), headers=headers),
                range(2),
            )
        )
    assert [a.status_code for a in answers] == [202, 202]
    assert len({a.json()["case_id"] for a in answers}) == 1
    assert sorted(a.json()["created"] for a in answers) == [False, True]
    assert count_cases(engine) == 1


def test_a_burst_of_the_same_filing_opens_one_case(
    client: TestClient, hotline: Headers, engine: Engine
) -> None:
    body = incident_body(source="app", external_id="APP-BURST-7")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: client.post("/v1/incidents", json=body, headers=hotline), range(16))
        )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["case_id"] for a in answers}) == 1
    assert [a.json()["created"] for a in answers].count(True) == 1
    assert count_cases(engine) == 1


def test_monitor_and_admin_may_file_supervisor_and_department_may_not(
    client: TestClient, token: Any
) -> None:
    for role, status in [("monitor", 202), ("admin", 202), ("supervisor", 403)]:
        answer = client.post("/v1/incidents", json=incident_body(), headers=token(role))
        assert answer.status_code == status, (role, answer.text)
    department = token("department", department="water")
    refused = client.post("/v1/incidents", json=incident_body(), headers=department)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "department" in refused.json()["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"category": "gas.leak", "title": "楼道里闻到很浓的煤气味"},
        {"title": "自来水管爆裂（二次来电）"},
        {"description": ""},
        {"location": {"latitude": 39.93, "longitude": 116.44, "district": "dongcheng"}},
        {"priority_hint": "critical"},
        {"attributes": {"floors": 3}},
        {"external_id": "HL-OTHER-1"},
        {"reporter": {"name": "李先生", "phone": "13900000001"}},
    ],
    ids=lambda change: "+".join(change),
)
def test_the_same_key_with_another_incident_is_refused_and_files_nothing(
    client: TestClient, hotline: Headers, engine: Engine, change: dict[str, Any]
) -> None:
    headers = {**hotline, "Idempotency-Key": "reused-key-1"}
    first = client.post("/v1/incidents", json=incident_body(), headers=headers)
    assert first.status_code == 202
    refused = client.post("/v1/incidents", json=incident_body(**change), headers=headers)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert refused.headers["content-type"] == "application/problem+json"
    assert "already used for a different incident" in problem["detail"]
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert count_cases(engine) == 1
    # The first filing, repeated exactly, is still a repeat.
    again = client.post("/v1/incidents", json=incident_body(), headers=headers)
    assert (again.status_code, again.json()["created"]) == (202, False)


def test_a_key_is_its_tokens_own(client: TestClient, token: Any, engine: Engine) -> None:
    key = {"Idempotency-Key": "everyone-picks-this-key"}
    water = client.post("/v1/incidents", json=incident_body(), headers=token("hotline") | key)
    gas_body = incident_body(category="gas.leak", title="楼道里闻到很浓的煤气味")
    gas = client.post("/v1/incidents", json=gas_body, headers=token("monitor") | key)
    same_body = client.post("/v1/incidents", json=incident_body(), headers=token("hotline") | key)
    assert [a.status_code for a in (water, gas, same_body)] == [202, 202, 202]
    assert [a.json()["created"] for a in (water, gas, same_body)] == [True, True, True]
    assert len({a.json()["case_id"] for a in (water, gas, same_body)}) == 3
    with session_factory(engine)() as session:
        categories = sorted(session.scalars(select(Case.category)))
    assert categories == ["gas.leak", "water.pipe_burst", "water.pipe_burst"]


def test_an_http_key_never_meets_the_intake_queues(
    client: TestClient, hotline: Headers, engine: Engine
) -> None:
    from tests.support.factories import HOTLINE, incident
    from worker.idempotency import QUEUE_SCOPE, Key

    with session_factory(engine)() as session, session.begin():
        queued = intake.accept_incident(
            session, incident(), actor=HOTLINE, idempotency_key=Key(QUEUE_SCOPE, "queue:m-1")
        )
    headers = {**hotline, "Idempotency-Key": "queue:m-1"}
    filed = client.post("/v1/incidents", json=incident_body(), headers=headers)
    assert (filed.status_code, filed.json()["created"]) == (202, True)
    assert filed.json()["case_id"] != queued.case.id


def test_racing_filings_with_one_key_and_two_incidents_file_one(
    client: TestClient, hotline: Headers, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_ready = threading.Barrier(2, timeout=10)
    open_case = intake.open_case

    def wait_then_open(*args: Any, **kwargs: Any) -> Any:
        both_ready.wait()
        return open_case(*args, **kwargs)

    monkeypatch.setattr(intake, "open_case", wait_then_open)
    headers = {**hotline, "Idempotency-Key": "race-key-2"}
    bodies = [incident_body(), incident_body(category="gas.leak", title="煤气味")]
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda body: client.post("/v1/incidents", json=body, headers=headers), bodies)
        )
    assert sorted(a.status_code for a in answers) == [202, 422]
    assert count_cases(engine) == 1
