"""GET /v1/cases/{id} and GET /v1/cases: what each role sees, filters, pages."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Headers, TokenMaker
from tests.api.filing import incident_body
from tests.support.factories import SYSTEM, walk_to
from worker.clock import now
from worker.contracts.enums import CaseState as C
from worker.db.models import Case, Task
from worker.db.session import session_factory


def file(client: TestClient, headers: Headers, **overrides: object) -> str:
    answer = client.post("/v1/incidents", json=incident_body(**overrides), headers=headers)
    assert answer.status_code == 202, answer.text
    case_id: str = answer.json()["case_id"]
    return case_id


def give_task(engine: Engine, case_id: str, department: str, role: str = "lead") -> str:
    with session_factory(engine)() as session, session.begin():
        task = Task(case_id=case_id, department=department, role=role, state="assigned")
        session.add(task)
        session.flush()
        return task.id


def test_a_case_shows_state_deadlines_tasks_and_timeline(
    client: TestClient, hotline: Headers, engine: Engine
) -> None:
    case_id = file(client, hotline, priority_hint="high")
    walk_to(engine, case_id, [C.triaged, C.dispatched])
    due = now() + timedelta(hours=2)
    with session_factory(engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        case.lead_department, case.resolve_due_at = "water", due
    give_task(engine, case_id, "roads", role="assisting")
    task_id = give_task(engine, case_id, "water")

    shown = client.get(f"/v1/cases/{case_id}", headers=hotline).json()
    assert shown["state"] == "dispatched"
    assert shown["priority"] == "high"
    assert shown["lead_department"] == "water"
    assert shown["departments"] == ["water", "roads"]
    assert shown["resolve_due_at"] is not None
    assert {t["id"] for t in shown["tasks"]} >= {task_id}
    assert shown["location"]["district"] == "dongcheng"
    timeline = shown["timeline"]
    assert [e["action"] for e in timeline] == ["case.received", "case.triaged", "case.dispatched"]
    assert [e["seq"] for e in timeline] == [1, 2, 3]
    assert timeline[1]["prev_hash"] == timeline[0]["hash"]
    assert timeline[2]["actor"] == {"kind": SYSTEM.kind.value, "id": SYSTEM.id}


def test_unknown_case_is_404(client: TestClient, supervisor: Headers) -> None:
    answer = client.get("/v1/cases/00000000-0000-0000-0000-000000000000", headers=supervisor)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_department_sees_only_cases_it_holds_a_task_on(
    client: TestClient, hotline: Headers, token: TokenMaker, engine: Engine
) -> None:
    theirs = file(client, hotline)
    other = file(client, hotline)
    give_task(engine, theirs, "water")
    give_task(engine, other, "gas")
    water = token("department", department="water")
    assert client.get(f"/v1/cases/{theirs}", headers=water).status_code == 200
    refused = client.get(f"/v1/cases/{other}", headers=water)
    assert refused.status_code == 404
    assert refused.json()["detail"] == f"There is no case {other}."


def test_list_filters(
    client: TestClient, hotline: Headers, supervisor: Headers, engine: Engine
) -> None:
    pipe = file(client, hotline)
    gas = file(client, hotline, category="gas.leak", location={"district": "xicheng"})
    late = file(client, hotline, category="roads.pothole")
    walk_to(engine, gas, [C.triaged])
    give_task(engine, gas, "gas")
    with session_factory(engine)() as session, session.begin():
        session.get_one(Case, late).resolve_due_at = now() - timedelta(minutes=5)

    def ids(**query: object) -> list[str]:
        answer = client.get("/v1/cases", params=query, headers=supervisor)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert ids() == [late, gas, pipe]
    assert ids(state="triaged") == [gas]
    assert ids(state=["triaged", "received"]) == [late, gas, pipe]
    assert ids(category="gas.leak") == [gas]
    assert ids(district="dongcheng") == [late, pipe]
    assert ids(department="gas") == [gas]
    assert ids(overdue=True) == [late]
    assert ids(overdue=False) == [gas, pipe]
    assert ids(state="closed") == []


def test_list_pages_with_a_cursor(client: TestClient, hotline: Headers) -> None:
    filed = [file(client, hotline) for _ in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/cases", params=params, headers=hotline).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(filed))


def test_page_size_and_cursor_are_checked(client: TestClient, hotline: Headers) -> None:
    too_big = client.get("/v1/cases", params={"limit": 201}, headers=hotline)
    assert too_big.status_code == 422
    assert too_big.json()["errors"][0]["field"] == "query.limit"
    forged = client.get("/v1/cases", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=hotline)
    assert forged.status_code == 422
    assert forged.json()["errors"][0]["field"] == "query.cursor"
    assert client.get("/v1/cases", params={"limit": 200}, headers=hotline).status_code == 200
