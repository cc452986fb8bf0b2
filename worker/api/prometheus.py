"""`GET /metrics`: Prometheus text exposition, for a scraper holding a supervisor token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from worker.api import problems
from worker.api.auth import require
from worker.auth import Principal, Role
from worker.config import get_settings
from worker.db.session import get_engine
from worker.metrics.prometheus import DatabaseGauges, database_metrics, process_metrics

router = APIRouter(tags=["metrics"])


def gauges_for(request: Request) -> DatabaseGauges:
    state = request.app.state
    if not hasattr(state, "database_gauges"):
        state.database_gauges = DatabaseGauges(get_engine, get_settings().metrics_cache_seconds)
    gauges: DatabaseGauges = state.database_gauges
    return gauges


@router.get(
    "/metrics",
    summary="Prometheus metrics: counters and stage timings of this API process, and gauges "
    "from the database (tasks overdue, cases open, dead deliveries)",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Text exposition format"},
        **problems.responses(401, 403, 500),
    },
)
def metrics(
    request: Request, _: Annotated[Principal, Depends(require(Role.supervisor))]
) -> Response:
    body = process_metrics() + database_metrics(gauges_for(request))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
