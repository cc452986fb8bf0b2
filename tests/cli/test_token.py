"""`closeloop token create | list | revoke`, run as an operator runs them, against the API."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from worker.api.app import create_app
from worker.cli.main import app
from worker.db.session import get_engine

runner = CliRunner()
TOKEN_LINE = re.compile(r"^cl_[A-Za-z0-9_-]{40,}$", re.MULTILINE)


@pytest.fixture
def client(service: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def create(*args: str) -> tuple[str, str]:
    """Run `token create`; returns (token id, token)."""
    result = runner.invoke(app, ["token", "create", *args])
    assert result.exit_code == 0, result.output
    found = TOKEN_LINE.search(result.stdout)
    assert found, result.output
    token_id = re.search(r"token ([0-9a-f-]{36})", result.output)
    assert token_id, result.output
    return token_id.group(1), found.group(0)


def test_create_list_revoke(service: dict[str, str], client: TestClient) -> None:
    token_id, token = create("--role", "supervisor", "--name", "night shift")
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/cases", headers=bearer).status_code == 200

    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 0, listed.output
    assert token_id in listed.output
    assert "night shift" in listed.output
    assert "supervisor" in listed.output
    assert token not in listed.output

    revoked = runner.invoke(app, ["token", "revoke", token_id])
    assert revoked.exit_code == 0, revoked.output
    refused = client.get("/v1/cases", headers=bearer)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"


def test_list_shows_revocation_and_last_use(service: dict[str, str], client: TestClient) -> None:
    token_id, token = create("--role", "hotline")
    before = runner.invoke(app, ["token", "list"]).output
    assert "never" in before
    client.get("/v1/cases", headers={"Authorization": f"Bearer {token}"})
    runner.invoke(app, ["token", "revoke", token_id])
    after = runner.invoke(app, ["token", "list"]).output
    row = next(line for line in after.splitlines() if token_id in line)
    assert "never" not in row
    assert row.count("UTC") == 3  # created, revoked, last used


def test_department_token_names_its_department(service: dict[str, str]) -> None:
    missing = runner.invoke(app, ["token", "create", "--role", "department"])
    assert missing.exit_code == 2
    assert "must name its department" in missing.output
    malformed = runner.invoke(
        app, ["token", "create", "--role", "department", "--department", "Water Works!"]
    )
    assert malformed.exit_code == 2
    assert "not a department id" in malformed.output
    unknown = runner.invoke(
        app, ["token", "create", "--role", "department", "--department", "atlantis"]
    )
    assert unknown.exit_code == 2
    assert "the routing rules have no department 'atlantis'" in unknown.output
    stray = runner.invoke(app, ["token", "create", "--role", "hotline", "--department", "water"])
    assert stray.exit_code == 2
    token_id, _ = create("--role", "department", "--department", "water")
    listed = runner.invoke(app, ["token", "list"]).output
    row = next(line for line in listed.splitlines() if token_id in line)
    assert "department" in row
    assert "water" in row


def test_unknown_role_and_unknown_token(service: dict[str, str]) -> None:
    assert runner.invoke(app, ["token", "create", "--role", "mayor"]).exit_code == 2
    gone = runner.invoke(app, ["token", "revoke", "no-such-token"])
    assert gone.exit_code == 1
    assert "no token no-such-token" in gone.output


def test_tokens_are_hashed_at_rest(service: dict[str, str]) -> None:
    tokens = [create("--role", role)[1] for role in ("hotline", "monitor", "admin")]
    with get_engine().connect() as connection:
        dump = " ".join(
            str(value)
            for row in connection.execute(text("SELECT * FROM api_tokens"))
            for value in row
        )
    for token in tokens:
        assert token not in dump
        assert token.removeprefix("cl_") not in dump


@pytest.mark.parametrize(("lifetime", "seconds"), [("90d", 90 * 86400), ("36h", 36 * 3600)])
def test_a_token_with_an_expiry_is_refused_after_it_saying_so(
    service: dict[str, str], client: TestClient, lifetime: str, seconds: int
) -> None:
    from datetime import UTC, datetime, timedelta

    from worker.clock import FrozenClock, use_clock

    start = datetime.now(UTC)
    clock = FrozenClock(start)
    previous = use_clock(clock)
    try:
        token_id, token = create("--role", "hotline", "--expires", lifetime)
        bearer = {"Authorization": f"Bearer {token}"}
        clock.advance(timedelta(seconds=seconds - 1))
        assert client.get("/v1/cases", headers=bearer).status_code == 200
        row = next(
            line
            for line in runner.invoke(app, ["token", "list"]).output.splitlines()
            if token_id in line
        )
        assert "expired" not in row
        clock.advance(timedelta(seconds=1))
        refused = client.get("/v1/cases", headers=bearer)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        expiry = (start + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert refused.json()["detail"].startswith(f"The token expired at {expiry}")
        row = next(
            line
            for line in runner.invoke(app, ["token", "list"]).output.splitlines()
            if token_id in line
        )
        assert f"{expiry} (expired)" in row
    finally:
        use_clock(previous)


def test_a_token_without_an_expiry_lasts_until_revoked(
    service: dict[str, str], client: TestClient
) -> None:
    from datetime import UTC, datetime, timedelta

    from worker.clock import FrozenClock, use_clock

    clock = FrozenClock(datetime.now(UTC))
    previous = use_clock(clock)
    try:
        _, token = create("--role", "hotline")
        clock.advance(timedelta(days=3650))
        assert (
            client.get("/v1/cases", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
    finally:
        use_clock(previous)


@pytest.mark.parametrize("lifetime", ["0d", "ninety days", "-5d", "90"])
def test_a_bad_expiry_is_refused_saying_how_to_write_it(
    service: dict[str, str], lifetime: str
) -> None:
    result = runner.invoke(app, ["token", "create", "--role", "hotline", "--expires", lifetime])
    assert result.exit_code == 2
    assert "--expires" in result.output or "lifetime" in result.output
    assert TOKEN_LINE.search(result.output) is None
