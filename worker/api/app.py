"""The FastAPI application: one factory, used by `closeloop api`, `closeloop up` and tests."""

from __future__ import annotations

from fastapi import FastAPI

from worker import __version__
from worker.api import health, problems


def create_app() -> FastAPI:
    app = FastAPI(
        title="closeloop",
        version=__version__,
        description="Case routing for city hotlines: file incidents, follow cases, act on tasks.",
    )
    problems.install(app)
    app.include_router(health.router)
    return app
