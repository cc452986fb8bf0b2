"""GET /v1/metrics on the hand-built dataset: the same figures as the report, any offset."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Headers, TokenMaker
from tests.metrics.test_report import START, TOTAL, WATER
from tests.support.metrics_dataset import seed

WINDOW = {"since": "2026-03-02T00:00:00+08:00", "until": "2026-03-03T16:00:00Z"}


def test_supervisor_gets_figures_by_department(
    client: TestClient, engine: Engine, supervisor: Headers
) -> None:
    seed(engine, START)
    answer = client.get("/v1/metrics", params={**WINDOW, "by": "department"}, headers=supervisor)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    water = body["groups"][0]
    assert water["key"] == "water"
    assert (water["received"], water["merged"], water["closed"]) == (
        WATER["received"], WATER["merged"], WATER["closed"],
    )  # fmt: skip
    assert water["closure_rate"] == {"numerator": 3, "denominator": 9, "value": 3 / 9}
    assert water["time_to_close"]["median_seconds"] == 20 * 3600
    assert body["total"]["backlog"] == TOTAL["backlog"]
    assert body["since"].startswith("2026-03-01T16:00:00")
    assert body["time_zone"] == "Asia/Shanghai"


def test_no_data_is_null_not_zero(client: TestClient, engine: Engine, supervisor: Headers) -> None:
    seed(engine, START)
    body = client.get("/v1/metrics", params={**WINDOW}, headers=supervisor).json()
    unrouted = next(group for group in body["groups"] if group["key"] is None)
    assert unrouted["response_rate"] == {"numerator": 0, "denominator": 0, "value": None}


def test_days_in_another_time_zone(client: TestClient, engine: Engine, token: TokenMaker) -> None:
    seed(engine, START)
    params = {**WINDOW, "by": "day", "tz": "UTC"}
    body = client.get("/v1/metrics", params=params, headers=token("admin")).json()
    # Shanghai's two days are three UTC dates: Mar 1 (from 16:00), Mar 2, Mar 3 (to 16:00)
    assert [group["key"] for group in body["groups"]] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert sum(group["received"] for group in body["groups"]) == TOTAL["received"]


def test_only_supervisors(client: TestClient, hotline: Headers) -> None:
    assert client.get("/v1/metrics").status_code == 401
    answer = client.get("/v1/metrics", headers=hotline)
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"


def test_bad_parameters_are_named(client: TestClient, supervisor: Headers) -> None:
    cases = [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-03-01T00:00:00"}, "since"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"since": "1d", "until": "2d"}, "until"),
        ({"by": "month"}, "by"),
        ({"since": "1000d", "by": "day"}, "since"),
    ]
    for params, field in cases:
        answer = client.get("/v1/metrics", params=params, headers=supervisor)
        assert answer.status_code == 422, params
        assert answer.json()["errors"][0]["field"] == f"query.{field}", answer.json()
