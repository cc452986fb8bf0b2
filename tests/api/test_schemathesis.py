"""Hostile input, generated: schemathesis reads `/openapi.json` and throws at every operation
requests its schema allows and requests it does not, with a valid token of a role that may
call it. Nothing may answer 5xx; every error is `application/problem+json`; every answer is
one the operation declares, in the shape it declares.

CLOSELOOP_SCHEMATHESIS_EXAMPLES sets the examples per operation (default 25); a long local
run: `CLOSELOOP_SCHEMATHESIS_EXAMPLES=500 pytest tests/api/test_schemathesis.py`."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import TokenMaker
from worker.api.app import create_app

EXAMPLES = int(os.environ.get("CLOSELOOP_SCHEMATHESIS_EXAMPLES", "25"))
PROBLEM = "application/problem+json"


# The schema is read once, at collection; each operation's test sends its requests to an app
# made for it, on a database of its own.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())


@pytest.fixture
def app(service: dict[str, str]) -> Any:
    return create_app()


def _role(method: str, path: str) -> tuple[str, str | None]:
    """A role that may call the operation: departments act on tasks, monitors post alerts,
    an admin may do everything else."""
    if method == "POST" and path.startswith("/v1/tasks/"):
        return "department", "gas"
    if path.startswith("/v1/monitor/"):
        return "monitor", None
    return "admin", None


def errors_are_problems(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])
        value = content_type[0] if isinstance(content_type, list) else content_type
        assert value.startswith(PROBLEM), (
            f"{case.method} {case.path} answered {response.status_code} as {value!r}"
        )
    return None


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} answered {response.status_code}: "
        f"{response.text[:500]}"
    )
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_survives_generated_input(case: Any, app: Any, token: TokenMaker) -> None:
    role, department = _role(case.method, case.path)
    headers = {**(case.headers or {}), **token(role, department=department)}
    case.call_and_validate(
        app=app,
        headers=headers,
        checks=[
            no_server_error,
            errors_are_problems,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
