"""The loop closed end to end, for real: PostgreSQL, Redis, worker processes, a real
`closeloop api` process called over HTTP with real tokens, and a department's endpoint that
verifies every signature.

A hotline files an incident; the worker dispatches it; the department gets its task signed,
accepts, reports progress and resolves through the task API; the hotline records the
citizen's answer. Returns go elsewhere, an unhappy citizen sends the case back to its lead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.filing import incident_body
from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from tests.support.receiver import Received
from worker.auth import Role, create_token
from worker.db.session import transaction
from worker.ledger.audit import verify

BURST_PIPE = {"category": "water.pipe_burst", "title": "小区门口水管爆裂"}
ELEVATOR = {
    "category": "housing.elevator_fault",
    "title": "电梯经常停运",
    "location": {"district": "xincheng", "address": "新城区人民路8号"},
}
Headers = dict[str, str]


@pytest.fixture
def running(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(pg_url, redis_url, tmp_path) as p:
        p.start_worker()
        yield p


@pytest.fixture
def api(running: Pipeline) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.start_api(), timeout=30) as client:
        yield client


def token(role: Role, department: str | None = None) -> Headers:
    with transaction() as session:
        made = create_token(session, role, department=department)
    return {"Authorization": f"Bearer {made.token}"}


def file(api: httpx.Client, **incident: Any) -> str:
    answer = api.post("/v1/incidents", json=incident_body(**incident), headers=token(Role.hotline))
    assert answer.status_code == 202, answer.text
    case_id: str = answer.json()["case_id"]
    return case_id


def webhook(p: Pipeline, department: str, event_type: str, case_id: str, nth: int = 1) -> Received:
    """The `nth` webhook of this type to this department about this case, once it arrives."""

    def matching() -> list[Received]:
        return [
            r
            for r in p.receiver.for_department(department)
            if r.body["type"] == event_type and r.body["data"]["case"]["id"] == case_id
        ]

    wait_for(
        lambda: len(matching()) >= nth,
        timeout=60,
        what=lambda: f"{event_type} #{nth} to {department}\n{p.logs()[-4000:]}",
    )
    found = matching()[nth - 1]
    assert found.verified, f"{event_type} to {department} failed signature verification"
    return found


def act(api: httpx.Client, link: str, headers: Headers, body: dict[str, Any] | None = None) -> Any:
    """Follow an action link from a webhook, as a department's system would."""
    path = link.split("://", 1)[1].split("/", 1)[1]
    answer = api.post(f"/{path}", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def case(api: httpx.Client, case_id: str) -> dict[str, Any]:
    answer = api.get(f"/v1/cases/{case_id}", headers=token(Role.supervisor))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def steps(shown: dict[str, Any]) -> list[str]:
    """The timeline without the webhook delivery notes (their timing is the worker's)."""
    return [e["action"] for e in shown["timeline"] if not e["action"].startswith("delivery.")]


def work_done(api: httpx.Client, p: Pipeline, case_id: str, department: str, nth: int = 1) -> None:
    """The department accepts, reports progress and resolves through its webhook's links."""
    assigned = webhook(p, department, "task.assigned", case_id, nth)
    links = assigned.body["data"]["links"]
    mine = token(Role.department, department)
    assert act(api, links["accept"], mine)["state"] == "accepted"
    progress = {"note": "抢修队已到现场", "attachments": ["https://photos.example/1.jpg"]}
    assert act(api, links["progress"], mine, progress)["state"] == "in_progress"
    assert act(api, links["resolve"], mine, {"note": "更换了破裂的管段"})["state"] == "resolved"


def test_the_happy_path_to_closed(api: httpx.Client, running: Pipeline) -> None:
    case_id = file(api, **BURST_PIPE)
    work_done(api, running, case_id, "water")
    assert case(api, case_id)["state"] == "resolved"

    answer = api.post(
        f"/v1/cases/{case_id}/feedback",
        json={"solved": True, "satisfied": True, "comment": "修好了，谢谢"},
        headers=token(Role.hotline),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "closed"

    shown = case(api, case_id)
    assert shown["state"] == "closed"
    assert steps(shown) == [
        "case.received",
        "case.triaged",
        "case.dispatched",
        "task.accepted",
        "case.accepted",
        "task.in_progress",
        "case.in_progress",
        "task.resolved",
        "case.resolved",
        "callback.recorded",
        "case.closed",
    ]
    actors = {e["action"]: e["actor"] for e in shown["timeline"]}
    assert (
        actors["task.resolved"] == actors["case.resolved"] == {"kind": "department", "id": "water"}
    )
    assert actors["callback.recorded"]["kind"] == "hotline"
    assert verify(running.engine).ok


def test_a_return_goes_elsewhere_and_a_second_to_the_operations_centre(
    api: httpx.Client, running: Pipeline
) -> None:
    case_id = file(api, **ELEVATOR)
    first = webhook(running, "market", "task.assigned", case_id)
    webhook(running, "gov-xincheng", "task.assigned", case_id)
    market = token(Role.department, "market")
    act(api, first.body["data"]["links"]["return"], market, {"reason": "不是市场监管的事"})

    cancelled = webhook(running, "gov-xincheng", "task.cancelled", case_id)
    assert cancelled.body["data"]["details"] == {"reason": "returned by market"}
    second = webhook(running, "housing", "task.assigned", case_id)
    assert second.body["data"]["task"]["dispatch_round"] == 2
    assert not [
        r
        for r in running.receiver.for_department("market")
        if r.body["type"] == "task.assigned" and r.body["data"]["task"]["dispatch_round"] == 2
    ]

    housing = token(Role.department, "housing")
    act(api, second.body["data"]["links"]["return"], housing, {"reason": "电梯归特种设备"})
    third = webhook(running, "ops-centre", "task.assigned", case_id)
    assert third.body["data"]["task"]["dispatch_round"] == 3

    shown = case(api, case_id)
    assert shown["lead_department"] == "ops-centre"
    assert steps(shown).count("case.returned") == 2
    assert verify(running.engine).ok


def test_an_unhappy_citizen_sends_the_case_back_to_its_lead(
    api: httpx.Client, running: Pipeline
) -> None:
    case_id = file(api, **BURST_PIPE)
    work_done(api, running, case_id, "water")
    answer = api.post(
        f"/v1/cases/{case_id}/feedback",
        json={"solved": False, "satisfied": False, "comment": "还在漏水"},
        headers=token(Role.hotline),
    )
    assert answer.status_code == 200, answer.text

    reopened = webhook(running, "water", "case.reopened", case_id)
    data = reopened.body["data"]
    assert data["case"]["escalation_level"] == 1
    assert data["task"]["dispatch_round"] == 2
    assert data["details"]["comment"] == "还在漏水"

    # The new task is worked like the first, and this time the citizen is satisfied.
    water = token(Role.department, "water")
    act(api, data["links"]["accept"], water)
    act(api, data["links"]["resolve"], water, {"note": "彻底更换了管道"})
    closed = api.post(
        f"/v1/cases/{case_id}/feedback",
        json={"solved": True, "satisfied": True},
        headers=token(Role.hotline),
    )
    assert closed.json()["case"]["state"] == "closed"
    shown = case(api, case_id)
    assert steps(shown).count("case.reopened") == 1
    assert shown["escalation_level"] == 1
    assert verify(running.engine).ok
