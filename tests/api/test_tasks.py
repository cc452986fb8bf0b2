"""The task API: a department sees and acts on its own tasks only (404 for the rest), other
roles get 403, each action answers the same when repeated and writes the audit store once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Headers, TokenMaker
from tests.support.journey import GAS_LEAK, actions, case_of, dispatched, event_count, task_of
from worker.contracts.enums import CaseState
from worker.rules import Ruleset, load_ruleset

RULES = Path(__file__).resolve().parents[2] / "routing_rules"
ACTIONS = ("accept", "progress", "resolve", "return")
BODIES: dict[str, dict[str, Any] | None] = {
    "accept": None,
    "progress": {"note": "crew on site"},
    "resolve": {"note": "valve replaced"},
    "return": {"reason": "not ours"},
}


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


@pytest.fixture
def gas_leak(engine: Engine, ruleset: Ruleset) -> str:
    return dispatched(engine, ruleset, **GAS_LEAK)


@pytest.fixture
def gas(token: TokenMaker) -> Headers:
    return token("department", department="gas")


@pytest.fixture
def fire(token: TokenMaker) -> Headers:
    return token("department", department="fire")


def _post(client: TestClient, task_id: str, action: str, headers: Headers, **extra: Any) -> Any:
    body = extra.pop("json", BODIES[action])
    return client.post(f"/v1/tasks/{task_id}/{action}", json=body, headers=headers, **extra)


def test_a_department_lists_its_own_tasks_only(
    client: TestClient, engine: Engine, gas_leak: str, gas: Headers, fire: Headers
) -> None:
    page = client.get("/v1/tasks", headers=gas).json()
    assert [(t["department"], t["role"]) for t in page["items"]] == [("gas", "lead")]
    assert page["items"][0]["case"]["id"] == gas_leak
    assert page["items"][0]["case"]["state"] == "dispatched"
    assert page["next_cursor"] is None
    # Asking for another department's tasks still shows only its own.
    others = client.get("/v1/tasks", params={"department": "gas"}, headers=fire).json()
    assert {t["department"] for t in others["items"]} == {"fire"}


def test_supervisors_see_every_task_filtered_and_paged(
    client: TestClient, engine: Engine, ruleset: Ruleset, supervisor: Headers, gas: Headers
) -> None:
    cases = [dispatched(engine, ruleset, **GAS_LEAK) for _ in range(3)]
    _post(client, task_of(engine, cases[0], "gas"), "accept", gas)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/tasks", params=params, headers=supervisor).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6

    fire = client.get("/v1/tasks", params={"department": "fire"}, headers=supervisor).json()
    assert {t["department"] for t in fire["items"]} == {"fire"}
    assert len(fire["items"]) == 3
    accepted = client.get("/v1/tasks", params={"state": "accepted"}, headers=supervisor).json()
    assert [t["case_id"] for t in accepted["items"]] == [cases[0]]


def test_pages_are_bounded(client: TestClient, supervisor: Headers) -> None:
    assert client.get("/v1/tasks", params={"limit": 201}, headers=supervisor).status_code == 422
    bad = client.get("/v1/tasks", params={"cursor": "nonsense"}, headers=supervisor)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.cursor"


@pytest.mark.parametrize("action", ACTIONS)
def test_another_departments_task_does_not_exist_for_you(
    client: TestClient, engine: Engine, gas_leak: str, fire: Headers, action: str
) -> None:
    task_id = task_of(engine, gas_leak, "gas")
    before = event_count(engine, gas_leak)
    refused = _post(client, task_id, action, fire)
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == f"There is no task {task_id}."
    assert client.get(f"/v1/tasks/{task_id}", headers=fire).status_code == 404
    assert event_count(engine, gas_leak) == before


@pytest.mark.parametrize("role", ["hotline", "supervisor", "monitor", "admin"])
def test_only_departments_act_on_tasks(
    client: TestClient, engine: Engine, gas_leak: str, token: TokenMaker, role: str
) -> None:
    refused = _post(client, task_of(engine, gas_leak, "gas"), "accept", token(role))
    assert refused.status_code == 403
    assert "department" in refused.json()["detail"]


def test_hotline_may_not_list_tasks(client: TestClient, hotline: Headers) -> None:
    assert client.get("/v1/tasks", headers=hotline).status_code == 403


def test_unknown_task_is_404(client: TestClient, gas: Headers, supervisor: Headers) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/v1/tasks/{missing}", headers=supervisor).status_code == 404
    assert _post(client, missing, "accept", gas).status_code == 404


def test_accept_twice_answers_the_same_and_writes_once(
    client: TestClient, engine: Engine, gas_leak: str, gas: Headers
) -> None:
    task_id = task_of(engine, gas_leak, "gas")
    first = _post(client, task_id, "accept", gas)
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "accepted"
    assert first.json()["acknowledged_at"] is not None
    after_first = event_count(engine, gas_leak)
    second = _post(client, task_id, "accept", gas)
    assert second.json() == first.json()
    assert event_count(engine, gas_leak) == after_first
    assert actions(engine, gas_leak).count("task.accepted") == 1
    assert case_of(engine, gas_leak).state == CaseState.accepted


def test_progress_honours_the_idempotency_key(
    client: TestClient, engine: Engine, gas_leak: str, gas: Headers
) -> None:
    task_id = task_of(engine, gas_leak, "gas")
    _post(client, task_id, "accept", gas)
    body = {"note": "crew on site", "attachments": ["https://photos.example/a.jpg"]}
    key = {"Idempotency-Key": "progress-1"}
    first = _post(client, task_id, "progress", gas | key, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "in_progress"
    after_first = event_count(engine, gas_leak)
    second = _post(client, task_id, "progress", gas | key, json=body)
    assert second.json() == first.json()
    assert event_count(engine, gas_leak) == after_first
    assert case_of(engine, gas_leak).state == CaseState.in_progress


def test_resolve_and_return_twice_write_once(
    client: TestClient, engine: Engine, gas_leak: str, gas: Headers, fire: Headers
) -> None:
    fire_task = task_of(engine, gas_leak, "fire")
    _post(client, fire_task, "return", fire)
    after_return = event_count(engine, gas_leak)
    again = _post(client, fire_task, "return", fire)
    assert again.status_code == 200
    assert again.json()["state"] == "returned"
    assert event_count(engine, gas_leak) == after_return

    gas_task = task_of(engine, gas_leak, "gas")
    _post(client, gas_task, "accept", gas)
    resolved = _post(client, gas_task, "resolve", gas)
    assert resolved.json()["state"] == "resolved"
    after_resolve = event_count(engine, gas_leak)
    assert _post(client, gas_task, "resolve", gas).json() == resolved.json()
    assert event_count(engine, gas_leak) == after_resolve
    assert case_of(engine, gas_leak).state == CaseState.resolved


def test_a_move_the_lifecycle_refuses_is_409_naming_the_states(
    client: TestClient, engine: Engine, gas_leak: str, gas: Headers
) -> None:
    task_id = task_of(engine, gas_leak, "gas")
    assert _post(client, task_id, "return", gas).status_code == 200
    refused = _post(client, task_id, "resolve", gas)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["id"] == task_id
    assert (problem["kind"], problem["state"], problem["requested"]) == (
        "task",
        "returned",
        "resolved",
    )
    assert task_id in problem["detail"]
    assert refused.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("progress", {}, "note"),
        ("progress", {"note": "  "}, "note"),
        ("progress", {"note": "x" * 2001}, "note"),
        ("progress", {"note": "ok", "attachments": ["not a url"]}, "attachments.0"),
        ("progress", {"note": "ok", "attachments": ["https://x.example/"] * 11}, "attachments"),
        ("resolve", {}, "note"),
        ("return", {"reason": ""}, "reason"),
        ("return", {"reason": "   "}, "reason"),
        ("return", {"reason": "no", "extra": 1}, "extra"),
    ],
)
def test_bodies_are_checked(
    client: TestClient,
    engine: Engine,
    gas_leak: str,
    gas: Headers,
    action: str,
    body: dict[str, Any],
    field: str,
) -> None:
    refused = _post(client, task_of(engine, gas_leak, "gas"), action, gas, json=body)
    assert refused.status_code == 422
    assert field in [e["field"] for e in refused.json()["errors"]]


def test_progress_with_a_reused_key_and_another_report_is_refused(
    client: TestClient, engine: Engine, gas_leak: str, gas: Headers, token: TokenMaker
) -> None:
    task_id = task_of(engine, gas_leak, "gas")
    _post(client, task_id, "accept", gas)
    key = {"Idempotency-Key": "progress-2"}
    first = _post(client, task_id, "progress", gas | key, json={"note": "crew on site"})
    assert first.status_code == 200, first.text
    written = event_count(engine, gas_leak)
    for other in (
        {"note": "valve closed, repairing"},
        {"note": "crew on site", "attachments": ["https://photos.example/b.jpg"]},
    ):
        refused = _post(client, task_id, "progress", gas | key, json=other)
        assert refused.status_code == 422, refused.text
        assert "already used for a different progress report" in refused.json()["detail"]
    assert event_count(engine, gas_leak) == written
    # Another token of the same department has keys of its own.
    colleague = token("department", department="gas")
    later = _post(client, task_id, "progress", colleague | key, json={"note": "valve closed"})
    assert later.status_code == 200, later.text
    assert event_count(engine, gas_leak) == written + 1
