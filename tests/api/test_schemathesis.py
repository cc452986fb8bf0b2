"""Hostile input, generated: schemathesis reads `/openapi.json` and throws at every operation
requests its schema allows and requests it does not, with a valid token of a role that may
call it. Nothing may answer 5xx; every error is `application/problem+json`; every answer is
one the operation declares, in the shape it declares; a request the schema forbids is
refused (the schema says no less than the server enforces); a 405 names the methods allowed.

Then the same, stateful: schemathesis follows the schema's links (a filed incident to its
case, a case to its tasks, a page to the next) so that ids are real ones, not guesses.

Every example that ever failed is kept in the hypothesis database (`.hypothesis/`, ignored by
git, kept between runs) and replayed first. CLOSELOOP_SCHEMATHESIS_EXAMPLES sets the examples
per operation (default 40); a long local run:
`CLOSELOOP_SCHEMATHESIS_EXAMPLES=500 pytest tests/api/test_schemathesis.py`."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import Engine

from tests.api.conftest import Headers, TokenMaker
from tests.support.journey import GAS_LEAK, dispatched
from worker.api.app import create_app
from worker.rules import load_ruleset

EXAMPLES = int(os.environ.get("CLOSELOOP_SCHEMATHESIS_EXAMPLES", "40"))
PROBLEM = "application/problem+json"
RULES = Path(__file__).resolve().parents[2] / "routing_rules"
DATABASE = DirectoryBasedExampleDatabase(
    Path(__file__).resolve().parents[2] / ".hypothesis" / "examples"
)
FUZZING = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # Under CI=true Hypothesis's own profile derandomizes (the same examples every run, so a
    # red CI is reproducible), which rules out an example database; a fresh clone has none
    # to replay anyway. Elsewhere every failure found is kept and replayed first.
    database=None if os.environ.get("CI") else DATABASE,
)


# Dates anywhere in the calendar and at any UTC offset, not only the tame ones: a date that
# exists locally may not exist in UTC (year 1 at +14:00), where the database keeps it.
def _moments(first: datetime, last: datetime) -> st.SearchStrategy[str]:
    return st.builds(
        lambda naive, minutes: naive.replace(tzinfo=timezone(timedelta(minutes=minutes))),
        st.datetimes(min_value=first, max_value=last),
        st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
    ).map(datetime.isoformat)


schemathesis.openapi.format(
    "date-time",
    st.one_of(
        _moments(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59)),
        _moments(datetime(1, 1, 1), datetime(1, 1, 2)),  # the calendar's two ends
        _moments(datetime(9999, 12, 30), datetime(9999, 12, 31, 23, 59)),
    ),
)

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


def refuses_invalid_data(ctx: Any, response: Any, case: Any) -> bool | None:
    # A body over the size limit is refused before it is read: 413 is that refusal. Queries
    # are left out: schemathesis's invalid query strings often come out valid once encoded
    # (a null sent as an empty value, a name that encodes to nothing), and it then reports
    # a valid request as accepted. `test_openapi_truth` checks the query rules instead.
    if response.status_code == 413 or case.method == "GET":
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    no_server_error,
    errors_are_problems,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    refuses_invalid_data,
    unsupported_method,
    allow_header_conformance,
]


@schema.parametrize()
@FUZZING
def test_every_operation_survives_generated_input(case: Any, app: Any, token: TokenMaker) -> None:
    role, department = _role(case.method, case.path)
    headers = {**(case.headers or {}), **token(role, department=department)}
    case.call_and_validate(app=app, headers=headers, checks=CHECKS)


class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences of calls along the schema's links, each with a token that may make it."""

    tokens: ClassVar[dict[tuple[str, str | None], Headers]] = {}

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        # A generated Authorization (negative cases make them) would win over ours and test
        # only the 401, which `test_auth_first` does already.
        for name in [name for name in case.headers or {} if name.lower() == "authorization"]:
            del case.headers[name]
        return {"headers": self.tokens[_role(case.method, case.path)]}

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        case.validate_response(response, checks=[no_server_error, errors_are_problems])


def test_linked_operations_survive_generated_sequences(
    app: Any, token: TokenMaker, engine: Engine
) -> None:
    # Cases dispatched to the gas department, so that the lists (where sequences start) lead
    # along their links to real cases and to tasks the gas token may act on.
    ruleset = load_ruleset(RULES)
    for _ in range(3):
        dispatched(engine, ruleset, **GAS_LEAK)
    for role, department in {("admin", None), ("monitor", None), ("department", "gas")}:
        Workflow.tokens[role, department] = token(role, department=department)
    Workflow.run(
        settings=settings(FUZZING, max_examples=max(EXAMPLES // 2, 10), stateful_step_count=6)
    )
