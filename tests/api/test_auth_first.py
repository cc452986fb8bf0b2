"""A caller without a valid token learns nothing but 401: not whether its body is too large,
of the wrong type or malformed, nor which methods a path takes. And `/ready`, which needs no
token, says which dependency is down but not where it lives."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Headers
from tests.support.service import service_environment
from worker.api.app import create_app
from worker.config import reset_settings_cache

PROBLEM = "application/problem+json"
NO_TOKEN: Headers = {}
FORGED = {"Authorization": "Bearer cl_forged0000000000000000000000000000000000000"}
JSON = {"Content-Type": "application/json"}

REQUESTS = [
    ("POST", "/v1/incidents", b"x" * 70_000, JSON),  # 413 for a caller with a token
    ("POST", "/v1/incidents", b"source=hotline", {"Content-Type": "text/plain"}),  # 415
    ("POST", "/v1/incidents", b'{"source": ', JSON),  # 422: malformed
    ("POST", "/v1/incidents", "{}".encode("utf-16"), JSON),  # 422: not UTF-8
    ("GET", "/v1/cases?category=%00", None, {}),  # 422: NUL
    ("GET", "/v1/cases?limit=0", None, {}),  # 422: out of range
    ("GET", "/v1/metrics?since=99999999d", None, {}),  # 422
    ("DELETE", "/v1/incidents", None, {}),  # 405
    ("OPTIONS", "/v1/deliveries/replay", None, {}),  # 405
    ("POST", "/v1/cases/x/feedback", b'{"solved": "yes"}', JSON),  # 422
    ("GET", "/metrics", None, {}),  # Prometheus: a supervisor's
]


@pytest.mark.parametrize("credentials", [NO_TOKEN, FORGED], ids=["no token", "forged token"])
@pytest.mark.parametrize(("method", "path", "body", "headers"), REQUESTS)
def test_no_valid_token_is_401_before_anything_else(
    client: TestClient,
    credentials: Headers,
    method: str,
    path: str,
    body: bytes | None,
    headers: Headers,
) -> None:
    answer = client.request(method, path, content=body, headers={**headers, **credentials})
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "allow" not in answer.headers


def test_with_a_token_the_same_requests_get_their_own_answers(
    client: TestClient, hotline: Headers
) -> None:
    statuses = [
        client.request(method, path, content=body, headers={**headers, **hotline}).status_code
        for method, path, body, headers in REQUESTS[:8]
    ]
    assert statuses == [413, 415, 422, 422, 422, 422, 403, 405]


def test_routes_without_a_token_stay_open(client: TestClient) -> None:
    for path in ("/health", "/ready", "/openapi.json", "/docs", "/dashboard"):
        assert client.get(path).status_code in (200, 503), path
    assert client.get("/no/such/thing").status_code == 404


@pytest.fixture
def nothing_answers(redis_url: str) -> Iterator[None]:
    dead_database = "postgresql+psycopg://closeloop:s3cret@127.0.0.1:1/closeloop"
    dead_broker = "redis://127.0.0.1:1/0"
    # The real Redis is named for the fixture's own clean-up; the service is pointed away.
    with service_environment(dead_database, redis_url):
        values_before = os.environ["CLOSELOOP_BROKER_URL"]
        os.environ["CLOSELOOP_BROKER_URL"] = dead_broker
        reset_settings_cache()
        try:
            yield
        finally:
            os.environ["CLOSELOOP_BROKER_URL"] = values_before
            reset_settings_cache()


def test_ready_names_what_is_down_and_keeps_where_it_is_to_the_log(
    nothing_answers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app()) as client:
        answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["problems"] == ["database: unavailable", "broker: unavailable"]
    for internal in ("127.0.0.1", ":1", "closeloop", "s3cret", "Error"):
        assert internal not in answer.text
    logged = capsys.readouterr()
    assert "127.0.0.1" in logged.out + logged.err
