"""The supervisors' web dashboard: static HTML and JavaScript (no build step) that signs in
with a supervisor token and reads everything from the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

# Only our own scripts run; the page cannot be framed (clickjacking) and talks only to us.
POLICY = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> FileResponse:
    return FileResponse(
        STATIC / "dashboard.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"},
    )


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
