"""Liveness and readiness: no token needed, so that orchestrators can probe them.

So `/ready` names only the dependency that is down; why (a host, a port, a driver's words)
goes to the log, where operators read it and strangers do not."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from worker.api import problems
from worker.db.session import get_engine
from worker.logging import get_logger

router = APIRouter(tags=["health"])
log = get_logger("closeloop.api.health")


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
        return _down("database", error)
    return None


def check_broker() -> str | None:
    from worker.messaging.broker import ping_broker

    try:
        ping_broker()
    except Exception as error:
        return _down("broker", error)
    return None


def _down(dependency: str, error: Exception) -> str:
    log.warning("not ready", dependency=dependency, error=f"{type(error).__name__}: {error}")
    return f"{dependency}: unavailable"


class Ready(BaseModel):
    status: Literal["ready"]


@router.get(
    "/ready",
    summary="The database and the broker answer",
    response_model=Ready,
    responses={
        503: {
            "model": problems.Problem,
            "description": "A dependency is down: `problems` names each, e.g. "
            "`database: unavailable` (the log says why)",
        }
    },
)
def ready() -> JSONResponse:
    failures = [f for f in (check_database(), check_broker()) if f]
    if failures:
        return problems.problem(503, "Not ready", "; ".join(failures), problems=failures)
    return JSONResponse({"status": "ready"})
