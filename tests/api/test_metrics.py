"""GET /v1/metrics on the hand-built dataset: the same figures as the report, any offset;
and GET /metrics for Prometheus, with the database's gauges."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Headers, TokenMaker
from tests.metrics.test_report import START, TOTAL, WATER
from tests.support.metrics_dataset import seed
from worker.clock import FrozenClock, use_clock

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


@pytest.fixture
def city_now(engine: Engine) -> Iterator[None]:
    seed(engine, START)
    previous = use_clock(FrozenClock(START + timedelta(hours=48)))
    try:
        yield
    finally:
        use_clock(previous)


@pytest.mark.usefixtures("city_now")
def test_scrape_needs_a_supervisor_token(client: TestClient, hotline: Headers) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=hotline).status_code == 403


@pytest.mark.usefixtures("city_now")
def test_scrape_shows_the_database_gauges(client: TestClient, supervisor: Headers) -> None:
    answer = client.get("/metrics", headers=supervisor)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    lines = set(answer.text.splitlines())
    # At h48: water's live tasks W4 round 2 (acknowledge due h10) and W10 (h-19) are late;
    # W12's acknowledge deadline (h49) is ahead; gas has none late.
    assert 'closeloop_tasks_overdue{department="water"} 2.0' in lines
    assert not any(line.startswith('closeloop_tasks_overdue{department="gas"}') for line in lines)
    # open now: water W4 W5 W6 W10 W12; gas G5; not routed G3 and W14 (filed at h48)
    assert 'closeloop_cases_open{department="water"} 5.0' in lines
    assert 'closeloop_cases_open{department="gas"} 1.0' in lines
    assert 'closeloop_cases_open{department=""} 2.0' in lines
    assert "# TYPE closeloop_stage_duration_seconds histogram" in lines
    assert "# TYPE closeloop_cases_received_total counter" in lines
