"""Every API call but health needs a valid token with the right role."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tests.api.conftest import TokenMaker
from tests.api.filing import incident_body
from worker.auth import Principal, Role, hash_token
from worker.clock import FrozenClock, use_clock
from worker.db.models import ApiToken
from worker.db.session import session_factory

PROTECTED = [
    ("POST", "/v1/incidents"),
    ("GET", "/v1/cases"),
    ("GET", "/v1/cases/some-case"),
    ("POST", "/v1/monitor/alertmanager"),
]


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> object:
    if method == "POST":
        return client.post(path, json=incident_body(), headers=headers)
    return client.get(path, headers=headers)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer " + "cl_" + secrets.token_urlsafe(32),  # well-formed, never issued
        "Bearer not-a-token",
        "Basic aG90bGluZTpzZWNyZXQ=",
        "Bearer",
    ],
)
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_valid_token_is_401(
    client: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = call(client, method, path, headers)
    assert answer.status_code == 401, answer.text  # type: ignore[attr-defined]
    assert answer.headers["www-authenticate"] == "Bearer"  # type: ignore[attr-defined]
    assert answer.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]


def test_a_forged_hash_is_no_token(client: TestClient, engine: Engine, token: TokenMaker) -> None:
    # Knowing a stored hash (a leaked backup) does not let anyone in: the hash is no token.
    token("supervisor")
    with session_factory(engine)() as session:
        stored = session.scalars(select(ApiToken.token_hash)).one()
    answer = client.get("/v1/cases", headers={"Authorization": f"Bearer {stored}"})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("monitor", "GET", "/v1/cases"),
        ("monitor", "GET", "/v1/cases/some-case"),
        ("department", "GET", "/v1/cases"),
        ("hotline", "POST", "/v1/monitor/alertmanager"),
        ("supervisor", "POST", "/v1/incidents"),
    ],
)
def test_wrong_role_is_403(
    client: TestClient, token: TokenMaker, role: str, method: str, path: str
) -> None:
    department = "water" if role == "department" else None
    answer = call(client, method, path, token(role, department=department))
    assert answer.status_code == 403, answer.text  # type: ignore[attr-defined]
    assert answer.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]


def test_admin_may_do_what_a_supervisor_may(client: TestClient, token: TokenMaker) -> None:
    assert client.get("/v1/cases", headers=token("admin")).status_code == 200


def test_health_and_docs_need_no_token(client: TestClient) -> None:
    for path in ("/health", "/ready", "/openapi.json", "/docs"):
        assert client.get(path).status_code in (200, 503), path
        assert client.get(path).status_code != 401


def test_every_api_operation_declares_bearer_and_its_problems(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearer"]["description"],
    }
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    ]
    assert len(operations) >= 3
    for path, method, operation in operations:
        assert operation["security"] == [{"bearer": []}], (path, method)
        for status in ("401", "403", "422", "500"):
            content = operation["responses"][status]["content"]
            assert list(content) == ["application/problem+json"], (path, method, status)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    previous = use_clock(frozen)
    try:
        yield frozen
    finally:
        use_clock(previous)


def test_last_use_is_written_at_most_once_a_minute(
    client: TestClient, engine: Engine, token: TokenMaker, clock: FrozenClock
) -> None:
    headers = token("supervisor")

    def last_used() -> datetime | None:
        with session_factory(engine)() as session:
            return session.scalars(select(ApiToken.last_used_at)).one()

    assert last_used() is None
    client.get("/v1/cases", headers=headers)
    first = last_used()
    assert first == clock.now()
    clock.advance(timedelta(seconds=50))
    client.get("/v1/cases", headers=headers)
    assert last_used() == first
    clock.advance(timedelta(seconds=20))
    client.get("/v1/cases", headers=headers)
    assert last_used() == clock.now()


def test_principal_roles() -> None:
    admin = Principal("t", "boss", Role.admin)
    assert admin.has_role(frozenset({Role.supervisor}))
    assert not admin.has_role(frozenset({Role.hotline}))
    water = Principal("t", "w", Role.department, "water")
    assert water.actor.id == "water"
    assert hash_token("cl_x") != hash_token("cl_y")
