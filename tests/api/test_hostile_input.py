"""Hostile input found by fuzzing, as classes: whatever an authenticated caller sends, the
answer is never a 500. A value the service cannot hold is a 422 naming the field.

Each property runs its examples against the real API on PostgreSQL; a counterexample is kept
in the hypothesis database (`.hypothesis/`) and tried first on the next run.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Headers, TokenMaker
from tests.api.filing import incident_body
from tests.api.test_alertmanager import alert, notification
from worker.contracts.wire import INT64_MAX, INT64_MIN
from worker.metrics.definitions import MOMENT_PATTERN

PROBLEM = "application/problem+json"
# Enough to cover the classes on every run; more run on each later run from the database.
API_EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def admin(token: TokenMaker) -> Headers:
    return token("admin")


@pytest.fixture
def monitor(token: TokenMaker) -> Headers:
    return token("monitor")


def refused(answer: Any, *fields: str) -> None:
    """A 422 problem whose errors name one of `fields`."""
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    named = {error["field"] for error in answer.json()["errors"]}
    assert named & set(fields), named


def fits_in_utc(moment: datetime) -> bool:
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timedelta(minutes=minutes)
)
any_moment = st.builds(
    lambda naive, offset: naive.replace(tzinfo=timezone(offset)),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    offsets,
)


@API_EXAMPLES
@given(number=st.integers())
@example(number=2**63)
@example(number=-(2**63) - 1)
@example(number=10**100)
def test_an_attribute_integer_is_stored_or_refused_by_name(
    client: TestClient, admin: Headers, number: int
) -> None:
    answer = client.post(
        "/v1/incidents", json=incident_body(attributes={"n": number}), headers=admin
    )
    if INT64_MIN <= number <= INT64_MAX:
        assert answer.status_code == 202, answer.text
    else:
        refused(answer, "attributes.n")


@API_EXAMPLES
@given(moment=any_moment)
@example(moment=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))))
@example(moment=datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))))
def test_occurred_at_is_stored_or_refused_by_name(
    client: TestClient, admin: Headers, moment: datetime
) -> None:
    body = incident_body(occurred_at=moment.isoformat())
    answer = client.post("/v1/incidents", json=body, headers=admin)
    in_future = fits_in_utc(moment) and moment > datetime.now(UTC) + timedelta(hours=1)
    if fits_in_utc(moment) and not in_future:
        assert answer.status_code == 202, answer.text
    else:
        refused(answer, "occurred_at")


@API_EXAMPLES
@given(moment=any_moment, field=st.sampled_from(["startsAt", "endsAt"]))
@example(
    moment=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    field="startsAt",
)
def test_alert_dates_are_taken_or_refused_by_name(
    client: TestClient, monitor: Headers, moment: datetime, field: str
) -> None:
    firing = alert(fingerprint="f" * 16)
    firing[field] = moment.isoformat()
    answer = client.post("/v1/monitor/alertmanager", json=notification(firing), headers=monitor)
    if fits_in_utc(moment):
        assert answer.status_code == 202, answer.text
    else:
        refused(answer, f"alerts.0.{field}")


window_text = st.one_of(
    st.from_regex(MOMENT_PATTERN, fullmatch=True),
    st.from_regex(r"[0-9]{1,12}[mhdw]", fullmatch=True),
    any_moment.map(datetime.isoformat),
    st.text(max_size=40),
)


@API_EXAMPLES
@given(
    text=window_text,
    field=st.sampled_from(["since", "until"]),
    by=st.sampled_from(["department", "day", "week"]),
)
@example(text="99999999d", field="since", by="day")
@example(text="0001-01-01T00:00:00+14:00", field="since", by="day")
@example(text="9999-12-31T23:59:59-14:00", field="until", by="department")
@example(text="2999-12-31T23:00:00Z", field="until", by="week")
def test_a_metrics_window_is_answered_or_refused_by_name(
    client: TestClient, admin: Headers, text: str, field: str, by: str
) -> None:
    params = {field: text, "by": by}
    if field == "until":
        params["since"] = "1970-01-01T00:00:00Z"
    answer = client.get("/v1/metrics", params=params, headers=admin)
    if answer.status_code != 200:
        refused(answer, "query.since", "query.until", "(query)")


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


cursor_text = st.one_of(
    st.binary(max_size=120).map(_cursor),
    st.tuples(any_moment.map(datetime.isoformat), st.text(max_size=40)).map(
        lambda pair: _cursor(orjson.dumps(list(pair)))
    ),
    st.text(max_size=60),
)


@API_EXAMPLES
@given(cursor=cursor_text, path=st.sampled_from(["/v1/cases", "/v1/tasks"]))
@example(cursor=_cursor(b'["2026-01-01T00:00:00+00:00","a\\u0000"]'), path="/v1/cases")
@example(cursor=_cursor(b'["0001-01-01T00:00:00+14:00","ab"]'), path="/v1/tasks")
def test_a_page_cursor_is_followed_or_refused_by_name(
    client: TestClient, admin: Headers, cursor: str, path: str
) -> None:
    answer = client.get(path, params={"cursor": cursor}, headers=admin)
    if answer.status_code != 200:
        refused(answer, "query.cursor", "(query)")


@API_EXAMPLES
@given(offset=st.integers(min_value=0) | st.integers(min_value=2**62, max_value=2**70))
@example(offset=10_000_000_000_000_000_000)
def test_a_deliveries_offset_is_answered_or_refused_by_name(
    client: TestClient, admin: Headers, offset: int
) -> None:
    answer = client.get("/v1/deliveries", params={"offset": offset}, headers=admin)
    if answer.status_code != 200:
        refused(answer, "query.offset")
