"""Bad requests get application/problem+json with a reason, and never echo what was sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Headers
from tests.api.filing import PHONE, incident_body
from tests.api.test_intake import count_cases
from worker.api.app import create_app
from worker.config import reset_settings_cache

PROBLEM = "application/problem+json"


def assert_problem(answer: object, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    assert answer.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = answer.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_each_bad_field_is_named_and_no_value_is_echoed(
    client: TestClient, hotline: Headers, engine: Engine
) -> None:
    bad_phone = "call me at " + PHONE
    body = incident_body(
        category="Not A Category",
        title="",
        location={"latitude": 95, "longitude": 116.4},
        reporter={"phone": bad_phone},
        colour="red",
    )
    answer = client.post("/v1/incidents", json=body, headers=hotline)
    problem = assert_problem(answer, 422)
    fields = {e["field"] for e in problem["errors"]}  # type: ignore[attr-defined]
    assert {"category", "title", "location.latitude", "reporter.phone", "colour"} <= fields
    assert PHONE not in answer.text
    assert "Not A Category" not in answer.text
    assert count_cases(engine) == 0


def test_malformed_json_is_a_problem(client: TestClient, hotline: Headers) -> None:
    answer = client.post(
        "/v1/incidents",
        content=b'{"source": "hotline", "title": ',
        headers={**hotline, "Content-Type": "application/json"},
    )
    problem = assert_problem(answer, 422)
    [error] = problem["errors"]  # type: ignore[misc]
    assert error["field"] == "(body)"
    assert error["problem"].startswith("not valid JSON at character 31: ")


def test_not_json_is_415(client: TestClient, hotline: Headers) -> None:
    answer = client.post(
        "/v1/incidents",
        content=b"source=hotline&title=burst",
        headers={**hotline, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "JSON" in assert_problem(answer, 415)["detail"]  # type: ignore[operator]
    bare = client.post("/v1/incidents", content=b"{}", headers=hotline)
    assert_problem(bare, 415)


def test_a_declared_oversized_body_is_413(client: TestClient, hotline: Headers) -> None:
    huge = incident_body(description="水" * 70_000)
    answer = client.post("/v1/incidents", json=huge, headers=hotline)
    assert "65536" in assert_problem(answer, 413)["detail"]  # type: ignore[operator]


def test_a_streamed_oversized_body_is_413(client: TestClient, hotline: Headers) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield b'{"description": "'
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1024
        yield b'"}'

    answer = client.post(
        "/v1/incidents",
        content=chunks(),
        headers={**hotline, "Content-Type": "application/json"},
    )
    assert_problem(answer, 413)


def test_the_limit_is_a_setting(
    service: dict[str, str], hotline: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSELOOP_MAX_BODY_BYTES", "100")
    reset_settings_cache()
    try:
        with TestClient(create_app()) as small:
            answer = small.post("/v1/incidents", json=incident_body(), headers=hotline)
    finally:
        monkeypatch.delenv("CLOSELOOP_MAX_BODY_BYTES")
        reset_settings_cache()
    assert_problem(answer, 413)


def test_an_unexpected_error_is_a_500_problem_without_internals(
    service: dict[str, str], hotline: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr("worker.api.incidents.accept_incident", explode)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        answer = client.post("/v1/incidents", json=incident_body(), headers=hotline)
    assert_problem(answer, 500)
    assert "hunter2" not in answer.text
    assert "RuntimeError" not in answer.text


def test_unknown_paths_and_methods_are_problems(client: TestClient, hotline: Headers) -> None:
    assert_problem(client.get("/v1/nothing-here", headers=hotline), 404)
    assert_problem(client.delete("/v1/incidents", headers=hotline), 405)


def test_a_body_that_is_not_utf8_is_422_like_malformed_json(
    client: TestClient, hotline: Headers
) -> None:
    answer = client.post(
        "/v1/incidents",
        content="煤气".encode("gbk"),
        headers={**hotline, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [
        {"field": "(body)", "problem": "not valid JSON: the body must be UTF-8 text"}
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("GET", "/v1/cases?category=%00", None, "(query)"),
        ("GET", "/v1/cases/a%00b", None, "(path)"),
        ("POST", "/v1/incidents", '{"source": "hotline", "category": "gas.leak", '
         '"title": "x\\u0000y"}', "(body)"),
        ("POST", "/v1/incidents", '{"source": "hotline", "category": "gas.leak", "title": "x", '
         '"attributes": {"k\\u0000": 1}}', "(body)"),
    ],
)  # fmt: skip
def test_a_nul_character_anywhere_is_422_not_a_database_error(
    client: TestClient, hotline: Headers, method: str, path: str, body: str | None, where: str
) -> None:
    answer = client.request(
        method,
        path,
        content=body,
        headers={**hotline, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == where


def test_an_escaped_backslash_before_u0000_is_not_a_nul(
    client: TestClient, hotline: Headers
) -> None:
    body = '{"source": "hotline", "category": "gas.leak", "title": "C:\\\\u0000 path"}'
    answer = client.post(
        "/v1/incidents", content=body, headers={**hotline, "Content-Type": "application/json"}
    )
    assert answer.status_code == 202, answer.text
