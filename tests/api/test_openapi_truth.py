"""The OpenAPI says what the server does: what it refuses at run time is in the schema, and
what the schema allows is not refused for its form. Checked here for the rules the fuzzer
found missing; `test_schemathesis` keeps checking the rest."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.api.conftest import Headers
from worker.api.app import create_app
from worker.api.cursor import PATTERN as CURSOR_PATTERN
from worker.api.cursor import decode, encode
from worker.contracts.incident import Location
from worker.metrics.definitions import MOMENT_PATTERN, parse_moment

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    schema: dict[str, Any] = create_app().openapi()
    return schema


def parameter(openapi: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        p for p in openapi["paths"][path]["get"]["parameters"] if p["name"] == name
    )
    return found


def test_the_metrics_window_and_the_cursor_state_their_form(openapi: dict[str, Any]) -> None:
    for name in ("since", "until"):
        assert parameter(openapi, "/v1/metrics", name)["schema"]["pattern"] == MOMENT_PATTERN
    for path in ("/v1/cases", "/v1/tasks"):
        assert parameter(openapi, path, "cursor")["schema"]["pattern"] == CURSOR_PATTERN


@given(st.from_regex(MOMENT_PATTERN, fullmatch=True))
@example("2026-02-31T00:00Z")
@example("9999999w")
def test_a_moment_of_the_stated_form_is_refused_only_for_its_date(text: str) -> None:
    refusal = ""
    try:
        moment = parse_moment(text, NOW)
    except ValueError as error:
        refusal = str(error)
    if refusal:
        # What a pattern cannot say: 31 February, or `9999999w` before 1970.
        assert "calendar" in refusal or "between 1970 and 2999" in refusal, refusal
    else:
        assert datetime(1970, 1, 1, tzinfo=UTC) <= moment < datetime(3000, 1, 1, tzinfo=UTC)


@given(
    st.one_of(st.text(max_size=40), st.from_regex(r"[0-9]{8,12}[mhdw]", fullmatch=True)).filter(
        lambda text: not re.fullmatch(MOMENT_PATTERN, text)
    )
)
@example("00000000d")
@example(" 7d")
@example("2026-03-01 00:00:00+08:00")
def test_a_moment_not_of_the_stated_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"neither|no UTC offset|not between|more digits"):
        parse_moment(text, NOW)


@given(st.text(max_size=200).filter(lambda text: not re.fullmatch(CURSOR_PATTERN, text)))
def test_a_cursor_not_of_the_stated_form_is_refused(text: str) -> None:
    with pytest.raises(RequestValidationError):
        decode(text)


@given(st.datetimes(timezones=st.just(UTC)), st.uuids().map(str))
def test_every_cursor_given_out_is_of_the_stated_form(at: datetime, row_id: str) -> None:
    cursor = encode(at, row_id)
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert decode(cursor) == (at, row_id)


coordinate = st.one_of(st.none(), st.floats(min_value=-90, max_value=90), st.just("absent"))


@given(latitude=coordinate, longitude=coordinate)
def test_the_location_schema_and_the_model_agree_on_coordinates(
    latitude: float | str | None, longitude: float | str | None
) -> None:
    location = {
        name: value
        for name, value in (("latitude", latitude), ("longitude", longitude))
        if value != "absent"
    }
    schema_says = jsonschema_rs.validator_for(Location.model_json_schema()).is_valid(location)
    try:
        Location.model_validate(location)
        model_says = True
    except ValidationError:
        model_says = False
    assert schema_says == model_says, location


def test_every_link_leads_to_an_operation_with_that_parameter(openapi: dict[str, Any]) -> None:
    operations = {
        operation["operationId"]: operation
        for methods in openapi["paths"].values()
        for operation in methods.values()
    }
    links = [
        link
        for methods in openapi["paths"].values()
        for operation in methods.values()
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert len(links) >= 10
    for link in links:
        target = operations[link["operationId"]]
        names = {p["name"] for p in target.get("parameters", [])}
        assert set(link["parameters"]) <= names, link


def test_a_405_names_the_methods_of_the_resource(
    client: TestClient, supervisor: Headers, openapi: dict[str, Any]
) -> None:
    for path, methods in openapi["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        answer = client.options(concrete, headers=supervisor)
        assert answer.status_code == 405, (path, answer.text)
        allowed = set(answer.headers["allow"].split(", "))
        assert {method.upper() for method in methods} <= allowed, (path, allowed)
    replay = client.options("/v1/deliveries/replay", headers=supervisor)
    assert replay.headers["allow"] == "POST"


def test_an_unknown_or_repeated_query_parameter_is_refused_by_name(
    client: TestClient, supervisor: Headers
) -> None:
    answer = client.get("/v1/cases", params={"satte": "open"}, headers=supervisor)
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["field"] == "query.satte"
    assert "state" in error["problem"]
    twice = client.get("/v1/cases?district=a&district=b", headers=supervisor)
    assert twice.status_code == 422
    assert twice.json()["errors"][0]["field"] == "query.district"
    states = client.get("/v1/cases?state=received&state=triaged", headers=supervisor)
    assert states.is_success


def test_ready_declares_what_it_answers(openapi: dict[str, Any]) -> None:
    responses = openapi["paths"]["/ready"]["get"]["responses"]
    assert set(responses) == {"200", "503"}
    assert "application/problem+json" in responses["503"]["content"]


def test_every_operation_with_a_body_declares_the_body_refusals(openapi: dict[str, Any]) -> None:
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            if "requestBody" in operation:
                assert {"413", "415", "422"} <= set(operation["responses"]), (method, path)
