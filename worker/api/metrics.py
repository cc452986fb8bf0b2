"""`GET /v1/metrics`: the supervisors' figures over a window, grouped."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from worker.api import problems
from worker.api.auth import require
from worker.auth import Principal, Role
from worker.clock import now
from worker.config import get_settings
from worker.db.session import session_factory
from worker.metrics.definitions import MOMENT_PATTERN, GroupBy, parse_moment
from worker.metrics.report import MetricsReport, build_report

router = APIRouter(prefix="/v1", tags=["metrics"])

Supervisor = Annotated[Principal, Depends(require(Role.supervisor))]


@router.get(
    "/metrics",
    summary="Received, response, closure, on-time, resolution and satisfaction rates, time to "
    "close, backlog and overdue, per department, category, district, day or week",
    responses=problems.responses(401, 403, 422, 500),
)
def metrics(
    _: Supervisor,
    since: Annotated[
        str,
        Query(
            max_length=40,
            description="`7d`, `12h`, `2w`, `90m` before now, or ISO 8601 with its UTC offset "
            "(`2026-03-01T00:00+08:00`), between 1970 and 2999.",
            json_schema_extra={"pattern": MOMENT_PATTERN},
        ),
    ] = "7d",
    until: Annotated[
        str | None,
        Query(
            max_length=40,
            description="Same forms as `since`, after it; default: now.",
            json_schema_extra={"pattern": MOMENT_PATTERN},
        ),
    ] = None,
    by: GroupBy = GroupBy.department,
    tz: Annotated[
        str | None,
        Query(max_length=64, description="IANA zone for days and weeks (default: the setting)."),
    ] = None,
) -> MetricsReport:
    moment = now()
    start = _moment("since", since, moment)
    end = moment if until is None else _moment("until", until, moment)
    zone = _zone(tz or get_settings().metrics_time_zone)
    if end <= start:
        _refuse("until", "the window must end after it starts")
    with session_factory()() as session:
        try:
            return build_report(session, start, end, by, zone)
        except ValueError as error:  # too many days or weeks for one answer
            _refuse("since", str(error))


def _moment(name: str, text: str, moment: datetime) -> datetime:
    try:
        return parse_moment(text, moment)
    except ValueError as error:
        _refuse(name, str(error))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        _refuse("tz", f"'{name}' is not an IANA time zone (e.g. Asia/Shanghai)")


def _refuse(field: str, why: str) -> NoReturn:
    raise RequestValidationError([{"loc": ("query", field), "msg": why, "type": "value_error"}])
