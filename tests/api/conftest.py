"""An API client on the service fixture's real PostgreSQL and Redis, and tokens to call with."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from worker.api.app import create_app
from worker.auth import Role, create_token
from worker.db.session import get_engine, transaction

Headers = dict[str, str]
TokenMaker = Callable[..., Headers]


@pytest.fixture
def client(service: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def engine(service: dict[str, str]) -> Engine:
    """The engine the API itself uses (the service fixture's database)."""
    return get_engine()


@pytest.fixture
def token(service: dict[str, str]) -> TokenMaker:
    """`token("hotline")` or `token("department", department="water")`: auth headers."""

    def make(role: str, department: str | None = None, name: str | None = None) -> Headers:
        with transaction() as session:
            made = create_token(session, Role(role), department=department, name=name)
        return {"Authorization": f"Bearer {made.token}"}

    return make


@pytest.fixture
def hotline(token: TokenMaker) -> Headers:
    return token("hotline")


@pytest.fixture
def supervisor(token: TokenMaker) -> Headers:
    return token("supervisor")
