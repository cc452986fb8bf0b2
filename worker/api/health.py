"""Liveness and readiness: no token needed, so that orchestrators can probe them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from worker.db.session import get_engine

router = APIRouter(tags=["health"])


# async: it runs on the event loop, so it answers even while every worker thread is busy
# (and load shedding never refuses it).
@router.get("/health", summary="The process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def check_database() -> str | None:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return f"database: {type(error).__name__}: {error}"
    return None


def check_broker() -> str | None:
    from worker.messaging.broker import ping_broker

    try:
        ping_broker()
    except Exception as error:
        return f"broker: {type(error).__name__}: {error}"
    return None


@router.get("/ready", summary="The database and the broker answer")
def ready() -> JSONResponse:
    failures = [f for f in (check_database(), check_broker()) if f]
    body: dict[str, Any] = {"status": "ready" if not failures else "not ready"}
    if failures:
        body["problems"] = failures
    return JSONResponse(body, status_code=503 if failures else 200)
