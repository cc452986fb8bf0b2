"""The FastAPI application: one factory, used by `closeloop api`, `closeloop up` and tests."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from worker import __version__
from worker.api import (
    alertmanager,
    callbacks,
    cases,
    dashboard,
    deliveries,
    health,
    incidents,
    metrics,
    problems,
    prometheus,
    supervision,
    tasks,
)
from worker.api.auth import TokenFirst
from worker.api.limits import BodyLimit
from worker.api.routing import known_query_only
from worker.api.shedding import LoadShedding
from worker.config import get_settings
from worker.metrics.counting import install_session_counting


def create_app() -> FastAPI:
    app = FastAPI(
        title="closeloop",
        version=__version__,
        description="Case routing for city hotlines: file incidents, follow cases, act on tasks.",
        dependencies=[Depends(known_query_only)],
    )
    problems.install(app)
    install_session_counting()
    settings = get_settings()
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(TokenFirst)  # runs before the body limit: 401 before 413/415/422
    # Added last, so outermost: a request refused for load costs nothing behind it.
    app.add_middleware(
        LoadShedding,
        max_in_flight=settings.max_requests_in_flight,
        body_timeout=settings.request_body_timeout,
    )
    app.include_router(health.router)
    app.include_router(incidents.router)
    app.include_router(cases.router)
    app.include_router(alertmanager.router)
    app.include_router(deliveries.router)
    app.include_router(supervision.router)
    app.include_router(tasks.router)
    app.include_router(callbacks.router)
    app.include_router(metrics.router)
    app.include_router(prometheus.router)
    dashboard.mount(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        app.openapi_schema = problems.problem_json_openapi(schema)
    return app.openapi_schema
