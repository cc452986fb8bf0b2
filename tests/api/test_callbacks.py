"""POST /v1/cases/{id}/feedback and /reopen: who may, what each answer does, what is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Headers, TokenMaker
from tests.support.journey import (
    GAS_LEAK,
    actions,
    case_of,
    deliveries,
    department,
    dispatched,
    on_task,
    task_of,
)
from worker.actions.department import accept, resolve
from worker.contracts.enums import CaseState
from worker.rules import Ruleset, load_ruleset

RULES = Path(__file__).resolve().parents[2] / "routing_rules"
UNKNOWN = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULES)


@pytest.fixture
def resolved(engine: Engine, ruleset: Ruleset) -> str:
    case_id = dispatched(engine, ruleset, **GAS_LEAK)
    for name in ("gas", "fire"):
        task_id = task_of(engine, case_id, name)
        on_task(engine, task_id, lambda s, t, who=name: accept(s, t, department(who)))
        on_task(engine, task_id, lambda s, t, who=name: resolve(s, t, department(who), "done"))
    return case_id


def _feedback(client: TestClient, case_id: str, headers: Headers, **answer: Any) -> Any:
    body = {"solved": True, "satisfied": True, "comment": ""} | answer
    return client.post(f"/v1/cases/{case_id}/feedback", json=body, headers=headers)


def test_a_satisfied_citizen_closes_the_case(
    client: TestClient, engine: Engine, resolved: str, hotline: Headers
) -> None:
    answer = _feedback(client, resolved, hotline, comment="处理得很好")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["outcome"], body["solved"], body["satisfied"]) == ("closed", True, True)
    assert body["case"]["state"] == "closed"
    assert body["comment"] == "处理得很好"
    assert case_of(engine, resolved).close_reason == "citizen satisfied"


def test_an_unhappy_citizen_reopens_it_to_the_same_lead_one_level_up(
    client: TestClient, engine: Engine, resolved: str, hotline: Headers
) -> None:
    answer = _feedback(client, resolved, hotline, solved=False, comment="还在漏")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"] == "reopened"
    assert body["case"]["state"] == "dispatched"
    assert body["case"]["lead_department"] == "gas"
    assert body["case"]["escalation_level"] == 1
    assert ("gas", "case.reopened") in deliveries(engine, resolved)


def test_feedback_on_a_case_not_resolved_is_409(
    client: TestClient, engine: Engine, ruleset: Ruleset, hotline: Headers
) -> None:
    case_id = dispatched(engine, ruleset, **GAS_LEAK)
    refused = _feedback(client, case_id, hotline)
    assert refused.status_code == 409
    assert "'dispatched'" in refused.json()["detail"]
    assert "callback.recorded" not in actions(engine, case_id)


def test_feedback_twice_closes_once(
    client: TestClient, engine: Engine, resolved: str, supervisor: Headers
) -> None:
    assert _feedback(client, resolved, supervisor).status_code == 200
    assert _feedback(client, resolved, supervisor).status_code == 409
    assert actions(engine, resolved).count("case.closed") == 1


def test_a_retried_answer_with_its_idempotency_key_is_the_same_answer(
    client: TestClient, engine: Engine, resolved: str, hotline: Headers
) -> None:
    keyed = {**hotline, "Idempotency-Key": "callback-7"}
    first = _feedback(client, resolved, keyed, solved=False, comment="还在漏")
    again = _feedback(client, resolved, keyed, solved=False, comment="还在漏")
    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["outcome"] == first.json()["outcome"] == "reopened"
    assert again.json()["recorded_at"] == first.json()["recorded_at"]
    assert actions(engine, resolved).count("callback.recorded") == 1
    assert actions(engine, resolved).count("case.reopened") == 1
    other = _feedback(client, resolved, keyed, solved=True, satisfied=True)
    assert other.status_code == 409
    assert "different answer" in other.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"solved": True},
        {"solved": "maybe", "satisfied": True},
        {"solved": True, "satisfied": True, "comment": "x" * 2001},
        {"solved": True, "satisfied": True, "rating": 5},
    ],
)
def test_feedback_bodies_are_checked(
    client: TestClient, resolved: str, hotline: Headers, body: dict[str, Any]
) -> None:
    answer = client.post(f"/v1/cases/{resolved}/feedback", json=body, headers=hotline)
    assert answer.status_code == 422


def test_who_may_record_feedback_and_reopen(
    client: TestClient, resolved: str, token: TokenMaker
) -> None:
    gas = token("department", department="gas")
    assert _feedback(client, resolved, gas).status_code == 403
    assert _feedback(client, resolved, token("monitor")).status_code == 403
    reopen = {"reason": "inspection found it leaking"}
    for role in ("hotline", "monitor"):
        refused = client.post(f"/v1/cases/{resolved}/reopen", json=reopen, headers=token(role))
        assert refused.status_code == 403
    assert client.post(f"/v1/cases/{resolved}/reopen", json=reopen, headers=gas).status_code == 403


def test_a_supervisor_reopens_a_closed_case(
    client: TestClient, engine: Engine, resolved: str, hotline: Headers, token: TokenMaker
) -> None:
    _feedback(client, resolved, hotline)
    answer = client.post(
        f"/v1/cases/{resolved}/reopen",
        json={"reason": "inspection found it leaking"},
        headers=token("admin"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "dispatched"
    case = case_of(engine, resolved)
    assert (case.state, case.escalation_level, case.dispatch_round) == (
        CaseState.dispatched,
        1,
        2,
    )
    assert actions(engine, resolved)[-1] == "case.reopened"


def test_reopen_is_refused_on_an_open_case_and_needs_a_reason(
    client: TestClient, engine: Engine, ruleset: Ruleset, supervisor: Headers
) -> None:
    case_id = dispatched(engine, ruleset, **GAS_LEAK)
    refused = client.post(
        f"/v1/cases/{case_id}/reopen", json={"reason": "why not"}, headers=supervisor
    )
    assert refused.status_code == 409
    blank = client.post(f"/v1/cases/{case_id}/reopen", json={"reason": " "}, headers=supervisor)
    assert blank.status_code == 422


def test_unknown_case_is_404(client: TestClient, hotline: Headers, supervisor: Headers) -> None:
    assert _feedback(client, UNKNOWN, hotline).status_code == 404
    missing = client.post(f"/v1/cases/{UNKNOWN}/reopen", json={"reason": "x"}, headers=supervisor)
    assert missing.status_code == 404
