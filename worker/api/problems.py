"""Errors as `application/problem+json` (RFC 9457), with a reason a person can act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.api.routing import allowed_methods
from worker.db.guard import ConcurrentChange
from worker.idempotency import KeyReused
from worker.ledger.lifecycle import TransitionRefused
from worker.logging import get_logger, scrub_text

PROBLEM_JSON = "application/problem+json"

log = get_logger("closeloop.api")


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the bad field, e.g. `location.latitude`.")
    problem: str


class Problem(BaseModel):
    """An error, as RFC 9457 `application/problem+json`."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="With 422: each bad field and what is wrong with it."
    )


def problem(
    status: int, title: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    # A detail may quote what the caller sent (an id in the path); a phone number or a secret
    # among it is redacted as in the logs, since error bodies end up in logs elsewhere.
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": scrub_text(detail),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    # The offending input is left out on purpose: it may be a citizen's phone number.
    fields = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            fields.append({"field": "(body)", "problem": _json_problem(item)})
            continue
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        # pydantic heads our validators' own words with "Value error, ": they read better bare.
        message = str(item.get("msg")).removeprefix("Value error, ")
        fields.append({"field": ".".join(location) or "(body)", "problem": message})
    return fields


def _json_problem(item: Mapping[str, Any]) -> str:
    # The decoder's own words name the mistake without repeating the text around it.
    position = item.get("loc", ("body", "?"))[-1]
    reason = (item.get("ctx") or {}).get("error", "")
    return f"not valid JSON at character {position}: {reason}".rstrip(": ")


async def _validation_problem(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    fields = _field_errors(error)
    detail = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return problem(422, "The request is not valid", detail, errors=fields)


# FastAPI's words when a body cannot even be decoded (bytes that are not UTF-8, say): to the
# caller that is the same mistake as malformed JSON, so it gets the same 422.
_UNREADABLE_BODY = "There was an error parsing the body"
# Bodies sent as JSON are read strictly before the routes (see `json_text`); what still
# reaches FastAPI's parser unreadable was sent without a JSON content type.
_UNREADABLE_REASON = "not valid JSON; send UTF-8 JSON with `Content-Type: application/json`"


async def _http_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 and error.detail == _UNREADABLE_BODY:
        fields = [{"field": "(body)", "problem": _UNREADABLE_REASON}]
        return problem(422, _TITLES[422], "(body): " + fields[0]["problem"], errors=fields)
    title = _TITLES.get(error.status_code, "Error")
    headers = error.headers
    if error.status_code == 405:
        # Starlette names the methods of the first route whose path matches only, so that
        # `/v1/deliveries/replay` would say GET and leave out POST.
        allowed = ", ".join(allowed_methods(request.scope))
        headers = {**(headers or {}), "Allow": allowed}
        return problem(405, title, f"{request.method} is not allowed here; use {allowed}.", headers)
    return problem(error.status_code, title, str(error.detail), headers=headers)


async def _conflict_problem(_: Request, error: Exception) -> JSONResponse:
    return problem(409, "Conflict", f"{error}")


async def _refused_problem(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, TransitionRefused)
    return problem(
        409,
        "Conflict",
        f"{error}",
        kind=error.kind,
        id=error.entity_id,
        state=error.current,
        requested=error.requested,
    )


async def _key_reused_problem(_: Request, error: Exception) -> JSONResponse:
    # 422 as the IETF Idempotency-Key draft has it: the request does not fit its own key.
    fields = [{"field": "Idempotency-Key", "problem": str(error)}]
    return problem(422, _TITLES[422], str(error), errors=fields)


async def _unexpected_problem(request: Request, error: Exception) -> JSONResponse:
    # The caller learns nothing of the internals; the log has the details.
    log.error(
        "unhandled error", path=request.url.path, error_type=type(error).__name__, exc_info=error
    )
    return problem(500, "Internal error", "Something went wrong on our side; try again later.")


_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "The request is not valid",
    503: "Not ready",
}


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(ConcurrentChange, _conflict_problem)
    app.add_exception_handler(TransitionRefused, _refused_problem)
    app.add_exception_handler(KeyReused, _key_reused_problem)
    app.add_exception_handler(Exception, _unexpected_problem)


_DESCRIPTIONS = {
    400: "The request could not be read",
    401: "No token, or an unknown or revoked one",
    403: "The token's role may not do this",
    404: "No such thing, or not yours to see",
    409: "Changed by someone else meanwhile, or not possible in its current state",
    413: "The body is larger than CLOSELOOP_MAX_BODY_BYTES",
    415: "The body is not JSON",
    422: "The request is not valid: each bad field is named",
    500: "An unexpected error",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems a route may answer (see `problem_json_openapi`)."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def problem_json_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Say `application/problem+json` where FastAPI wrote `application/json` for errors."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[:1] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema
