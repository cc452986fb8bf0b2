"""Dead letters as a supervisor meets them: the API and `closeloop deliveries`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.support.scripted_receiver import Receiver, Reply
from tests.webhooks.conftest import Departments, actions, case_with_task, delivery, drive, queue
from worker.api.app import create_app
from worker.auth import Role, create_token
from worker.cli.main import app as cli
from worker.db.session import transaction
from worker.webhooks import send_delivery


def token(engine: Engine, role: str, department: str | None = None) -> dict[str, str]:
    with transaction(engine) as session:
        made = create_token(session, Role(role), department=department)
    return {"Authorization": f"Bearer {made.token}"}


def dead_deliveries(
    engine: Engine, receiver: Receiver, departments: Departments, how_many: int
) -> tuple[str, list[str]]:
    """A case whose deliveries all died: one attempt each (schedule `0s`), answered 500."""
    departments.add("water", receiver.url)
    receiver.script(*[Reply(500)] * how_many)
    case_id, task_id = case_with_task(engine)
    kinds = ["task.assigned", "task.reminder", "task.escalated"][:how_many]
    ids = [queue(engine, case_id, task_id, event_type=kind) for kind in kinds]
    assert [send_delivery(engine, i, endpoints=departments) for i in ids] == ["dead"] * how_many
    return case_id, ids


@pytest.fixture
def api(settings: Callable[..., None]) -> TestClient:
    settings(webhook_schedule="0s")
    return TestClient(create_app())


def test_supervisors_list_and_replay_dead_letters(
    api: TestClient,
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
) -> None:
    case_id, ids = dead_deliveries(pg_engine, receiver, departments, 2)
    supervisor = token(pg_engine, "supervisor")

    listed = api.get("/v1/deliveries", params={"state": "dead"}, headers=supervisor)
    assert listed.status_code == 200
    assert sorted(item["id"] for item in listed.json()["items"]) == sorted(ids)
    first = api.get(f"/v1/deliveries/{ids[0]}", headers=supervisor).json()
    assert first["attempt_log"][0]["status_code"] == 500
    assert first["webhook_id"] == receiver.received[0].webhook_id

    one = api.post(f"/v1/deliveries/{ids[0]}/replay", headers=supervisor)
    assert (one.status_code, one.json()) == (202, {"replayed": [ids[0]], "skipped": {}})
    again = api.post(f"/v1/deliveries/{ids[0]}/replay", headers=supervisor)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert api.post("/v1/deliveries/nope/replay", headers=supervisor).status_code == 404

    bulk = api.post("/v1/deliveries/replay", json={"department": "water"}, headers=supervisor)
    assert (bulk.status_code, bulk.json()["replayed"]) == (202, [ids[1]])
    assert sorted(drive(pg_engine, departments)) == ["delivered", "delivered"]
    first_tries, replays = receiver.received[:2], receiver.received[2:]
    assert sorted(r.webhook_id for r in replays) == sorted(r.webhook_id for r in first_tries)
    assert actions(pg_engine, case_id).count("delivery.replayed") == 2
    assert (
        api.get("/v1/deliveries", params={"state": "dead"}, headers=supervisor).json()["items"]
        == []
    )


def test_bulk_replay_by_ids(
    api: TestClient, pg_engine: Engine, receiver: Receiver, departments: Departments
) -> None:
    _, ids = dead_deliveries(pg_engine, receiver, departments, 2)
    answer = api.post(
        "/v1/deliveries/replay",
        json={"ids": [*ids, "nope"]},
        headers=token(pg_engine, "admin"),
    )
    assert answer.status_code == 202
    assert answer.json() == {"replayed": ids, "skipped": {"nope": "no such delivery"}}


def test_only_supervisors_and_admins_see_deliveries(api: TestClient, pg_engine: Engine) -> None:
    assert api.get("/v1/deliveries").status_code == 401
    assert api.get("/v1/deliveries", headers={"Authorization": "Bearer nope"}).status_code == 401
    for role, department in (("hotline", None), ("department", "water")):
        refused = api.get("/v1/deliveries", headers=token(pg_engine, role, department))
        assert refused.status_code == 403
        assert "needs: supervisor" in refused.json()["detail"]
        replay = api.post(
            "/v1/deliveries/replay", json={}, headers=token(pg_engine, role, department)
        )
        assert replay.status_code == 403


def test_cli_lists_replays_and_re_enables(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
) -> None:
    settings(webhook_schedule="0s")
    _, ids = dead_deliveries(pg_engine, receiver, departments, 3)
    runner = CliRunner()

    listed = runner.invoke(cli, ["deliveries", "dead"])
    assert listed.exit_code == 0, listed.output
    assert "Dead deliveries (3)" in listed.output
    assert all(i in listed.output for i in ids)
    assert "answered 500" in listed.output

    one = runner.invoke(cli, ["deliveries", "replay", ids[0]])
    assert one.exit_code == 0, one.output
    assert f"replayed {ids[0]}" in one.output
    twice = runner.invoke(cli, ["deliveries", "replay", ids[0]])
    assert twice.exit_code == 1
    assert "only a dead or delivered one can be replayed" in twice.output

    rest = runner.invoke(cli, ["deliveries", "replay", "--all-dead"])
    assert rest.exit_code == 0, rest.output
    assert "2 replayed, 0 skipped" in rest.output
    assert {delivery(pg_engine, i).state for i in ids} == {"pending"}
    assert runner.invoke(cli, ["deliveries", "replay"]).exit_code == 2

    assert runner.invoke(cli, ["deliveries", "enable", "water"]).exit_code == 0
    assert runner.invoke(cli, ["deliveries", "enable", "nobody"]).exit_code == 2
