"""What the wire takes, strictly: JSON as RFC 8259 defines it, and each field its own type.
Anything else is a 422 that names the field (or the body) and says truly what is wrong."""

from __future__ import annotations

import codecs
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.api.conftest import Headers, TokenMaker
from tests.api.filing import incident_body
from tests.api.test_alertmanager import alert, notification
from tests.api.test_intake import count_cases
from worker.api.json_text import MAX_DEPTH
from worker.contracts.wire import MAX_ATTRIBUTE_TEXT

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}


def problems_of(answer: Any) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    return {error["field"]: error["problem"] for error in answer.json()["errors"]}


def raw_incident(fragment: str) -> bytes:
    """An incident body with `fragment` spliced in as raw JSON text."""
    return (
        '{"source": "hotline", "category": "water.pipe_burst", "title": "burst", ' + fragment + "}"
    ).encode()


@pytest.mark.parametrize(
    "fragment",
    [
        '"location": {"latitude": NaN, "longitude": 116.4}',
        '"location": {"latitude": 39.9, "longitude": Infinity}',
        '"location": {"latitude": -Infinity, "longitude": 116.4}',
        '"location": {"latitude": 1e400, "longitude": 116.4}',
        '"attributes": {"reading": NaN}',
        '"attributes": {"reading": -1e999}',
    ],
)
def test_non_standard_numbers_are_refused_not_stored_as_null(
    client: TestClient, hotline: Headers, engine: Engine, fragment: str
) -> None:
    answer = client.post(
        "/v1/incidents", content=raw_incident(fragment), headers={**hotline, **JSON}
    )
    problem = problems_of(answer)["(body)"]
    assert "NaN and Infinity are not JSON numbers" in problem or "too large" in problem
    assert count_cases(engine) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"location": {"latitude": True, "longitude": 116.4}}, "location.latitude"),
        ({"location": {"latitude": 39.9, "longitude": "116.4"}}, "location.longitude"),
        ({"attributes": {"bad": None}}, "attributes.bad"),
        ({"attributes": {"bad": [1, 2]}}, "attributes.bad"),
        ({"attributes": {"long": "x" * (MAX_ATTRIBUTE_TEXT + 1)}}, "attributes.long"),
        ({"occurred_at": 0}, "occurred_at"),
    ],
)
def test_incident_fields_are_not_coerced(
    client: TestClient, hotline: Headers, overrides: dict[str, Any], field: str
) -> None:
    answer = client.post("/v1/incidents", json=incident_body(**overrides), headers=hotline)
    assert field in problems_of(answer)


def test_what_clients_legitimately_send_is_still_taken(
    client: TestClient, hotline: Headers
) -> None:
    body = incident_body(
        location={"latitude": 40, "longitude": 116},  # integers for numbers
        occurred_at="2026-03-01T08:15:00+08:00",
        attributes={"sensor": "P-7", "reading": 3, "ratio": 0.5, "alarm": True, "text": "x" * 500},
    )
    assert client.post("/v1/incidents", json=body, headers=hotline).status_code == 202


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "1", None])
def test_feedback_answers_are_true_or_false_only(
    client: TestClient, hotline: Headers, value: Any
) -> None:
    body = {"solved": value, "satisfied": True}
    answer = client.post("/v1/cases/no-such-case/feedback", json=body, headers=hotline)
    assert "solved" in problems_of(answer)


@pytest.mark.parametrize("value", [0, 1772352000, "1772352000", 1772352000.5, True])
def test_alertmanager_dates_are_not_numbers(
    client: TestClient, token: TokenMaker, value: Any
) -> None:
    firing = alert()
    firing["endsAt"] = value
    answer = client.post(
        "/v1/monitor/alertmanager", json=notification(firing), headers=token("monitor")
    )
    assert "alerts.0.endsAt" in problems_of(answer)


def test_alertmanager_truncated_count_is_an_integer(client: TestClient, token: TokenMaker) -> None:
    body = {**notification(alert()), "truncatedAlerts": "3"}
    answer = client.post("/v1/monitor/alertmanager", json=body, headers=token("monitor"))
    assert "truncatedAlerts" in problems_of(answer)


def body_problem(client: TestClient, headers: Headers, content: bytes) -> str:
    answer = client.post("/v1/incidents", content=content, headers={**headers, **JSON})
    return problems_of(answer)["(body)"]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(depth=st.integers(min_value=MAX_DEPTH + 2, max_value=10_000), opener=st.sampled_from("[{"))
def test_a_deeply_nested_body_is_told_so(
    client: TestClient, hotline: Headers, depth: int, opener: str
) -> None:
    if opener == "[":
        content = b"[" * depth + b"]" * depth
    else:
        content = b'{"a":' * depth + b"1" + b"}" * depth
    assert "nested deeper than" in body_problem(client, hotline, content)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(digits=st.integers(min_value=400, max_value=20_000), sign=st.sampled_from(["", "-"]))
def test_a_number_of_thousands_of_digits_is_told_too_large(
    client: TestClient, hotline: Headers, digits: int, sign: str
) -> None:
    content = raw_incident(f'"attributes": {{"n": {sign}{"9" * digits}}}')
    assert "the number is too large" in body_problem(client, hotline, content)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_a_utf16_or_utf32_body_is_told_to_be_utf8(
    client: TestClient, hotline: Headers, encoding: str
) -> None:
    content = raw_incident('"description": "水管"').decode().encode(encoding)
    assert "UTF-16 or UTF-32" in body_problem(client, hotline, content)


def test_other_bytes_that_are_not_utf8_are_told_so(client: TestClient, hotline: Headers) -> None:
    assert "must be UTF-8" in body_problem(client, hotline, "煤气".encode("gbk"))
    assert "must be UTF-8" in body_problem(client, hotline, codecs.BOM_UTF8[:2] + b"{}")


def test_a_lone_surrogate_is_refused_before_the_database(
    client: TestClient, hotline: Headers
) -> None:
    problem = body_problem(client, hotline, raw_incident('"description": "\\ud800"'))
    assert problem.startswith("not valid JSON at character")
