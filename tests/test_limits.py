"""The API reference's Limits table (docs/api.md) says what the code enforces: each bound
read from the table is the bound in force, so neither can change without the other."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from worker.api import cases, tasks
from worker.api.app import create_app
from worker.config import Settings
from worker.contracts import alertmanager, callback, incident, task
from worker.messaging.intake_queue import MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parents[1]


def _limits() -> dict[str, str]:
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = page[page.index("## Limits") :]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ")]
    return {what.strip(): bound.strip() for what, bound in rows[1:]}


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def _parameter(method: str, path: str, name: str) -> dict[str, Any]:
    """A parameter as the OpenAPI document (and so the validation) declares it."""
    operation = create_app().openapi()["paths"][path][method]
    (found,) = [p for p in operation["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found["schema"]
    return next((s for s in schema.get("anyOf", []) if s.get("type") == "string"), schema)


EXPECTED = {
    "a request body": [Settings().max_body_bytes],
    "requests in flight in one API process": [Settings().max_requests_in_flight],
    "the time a request body may take to arrive": [int(Settings().request_body_timeout)],
    "a message on the intake queue": [MAX_MESSAGE_BYTES],
    "an incident's title": [incident.MAX_TITLE_CHARS],
    "an incident's description": [incident.MAX_DESCRIPTION_CHARS],
    "an incident's attachments": [incident.MAX_ATTACHMENTS, incident.MAX_URL_CHARS],
    "an incident's attributes": [incident.MAX_ATTRIBUTES],
    "an incident's `occurred_at`": [incident.OCCURRED_AT_AHEAD // timedelta(hours=1), 8601],
    "a progress note": [task.MAX_NOTE_CHARS],
    "a progress report's attachments": [task.MAX_ATTACHMENTS, task.MAX_URL_CHARS],
    "a return, reopen or supervisor's reason": [task.MAX_REASON_CHARS],
    "a callback comment": [callback.MAX_COMMENT_CHARS],
    "alerts in one Alertmanager notification": [alertmanager.MAX_ALERTS],
    "a page of cases or tasks (`limit`)": [cases.MAX_PAGE, 50],
}


def test_the_readme_states_the_api_s_bounds() -> None:
    limits = _limits()
    for path in ("/v1/cases", "/v1/tasks", "/v1/deliveries"):
        declared = _parameter("get", path, "limit")
        what = (
            "a page of deliveries (`limit`)"
            if "deliveries" in path
            else ("a page of cases or tasks (`limit`)")
        )
        assert _numbers(limits[what]) == [declared["maximum"], declared["default"]]
    key = _parameter("post", "/v1/incidents", "Idempotency-Key")
    assert _numbers(limits["an `Idempotency-Key`"]) == [key["maxLength"]]


@pytest.mark.parametrize("what", sorted(EXPECTED))
def test_the_readme_states_the_bound_in_force(what: str) -> None:
    assert _numbers(_limits()[what]) == EXPECTED[what]


def test_pages_of_cases_and_tasks_share_one_bound() -> None:
    assert cases.MAX_PAGE == tasks.MAX_PAGE
    assert callback.MAX_REASON_CHARS == task.MAX_REASON_CHARS
