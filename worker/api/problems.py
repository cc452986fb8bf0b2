"""Errors as `application/problem+json` (RFC 9457), with a reason a person can act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int, title: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    # The offending input is left out on purpose: it may be a citizen's phone number.
    fields = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        fields.append({"field": ".".join(location) or "(body)", "problem": str(item.get("msg"))})
    return fields


async def _validation_problem(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    fields = _field_errors(error)
    detail = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return problem(422, "The request is not valid", detail, errors=fields)


async def _http_problem(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    title = _TITLES.get(error.status_code, "Error")
    return problem(error.status_code, title, str(error.detail), headers=error.headers)


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
