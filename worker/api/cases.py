"""Reading cases: one case with its tasks and timeline, and filtered lists of cases.

A department sees a case only while it holds a task on it (any task, current or past); for
any other case it gets 404, the same as for a case that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select
from sqlalchemy.orm import Session, selectinload

from worker.api import links, problems
from worker.api.auth import require
from worker.api.case_view import case_out
from worker.api.cursor import Cursor, decode
from worker.api.cursor import encode as cursor_of
from worker.auth import Principal, Role
from worker.clock import now
from worker.contracts.case import CaseOut, CasePage, CaseSummary
from worker.contracts.enums import CaseState
from worker.db.models import Case, Task
from worker.db.session import transaction
from worker.ledger.lifecycle import OPEN_CASE_STATES

router = APIRouter(prefix="/v1", tags=["cases"])

MAX_PAGE = 200


@router.get(
    "/cases/{case_id}",
    summary="A case: state, priority, departments, deadlines, tasks and timeline",
    responses=problems.responses(401, 403, 404, 422, 500) | links.case(),
)
def read_case(
    case_id: str,
    caller: Annotated[Principal, Depends(require(Role.hotline, Role.supervisor, Role.department))],
) -> CaseOut:
    with transaction() as session:
        case = session.get(Case, case_id, options=[selectinload(Case.tasks)])
        if case is None or not _may_see(session, caller, case_id):
            raise HTTPException(404, f"There is no case {case_id}.")
        return case_out(session, case)


def _may_see(session: Session, caller: Principal, case_id: str) -> bool:
    if caller.role is not Role.department:
        return True
    holds_task = exists().where(Task.case_id == case_id, Task.department == caller.department)
    return bool(session.scalar(select(holds_task)))


@router.get(
    "/cases",
    summary="Cases, newest first, filtered",
    responses=problems.responses(401, 403, 422, 500) | links.case_page(),
)
def list_cases(
    _: Annotated[Principal, Depends(require(Role.hotline, Role.supervisor))],
    state: Annotated[list[CaseState] | None, Query(description="One or more states.")] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    district: Annotated[str | None, Query(max_length=64)] = None,
    department: Annotated[
        str | None, Query(max_length=64, description="Cases on which it holds a task.")
    ] = None,
    overdue: Annotated[
        bool | None, Query(description="Flagged overdue, or open past the resolve deadline.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> CasePage:
    query = select(Case).order_by(Case.received_at.desc(), Case.id.desc()).limit(limit + 1)
    query = _filtered(query, state, category, district, department, overdue)
    if cursor is not None:
        query = query.where(_after(*decode(cursor)))
    with transaction() as session:
        cases = list(session.scalars(query))
    page, more = cases[:limit], len(cases) > limit
    return CasePage(
        items=[CaseSummary.model_validate(case) for case in page],
        next_cursor=_encode(page[-1]) if more else None,
    )


def _filtered(
    query: Select[Case],
    states: list[CaseState] | None,
    category: str | None,
    district: str | None,
    department: str | None,
    overdue: bool | None,
) -> Select[Case]:
    if states:
        query = query.where(Case.state.in_([s.value for s in states]))
    if category is not None:
        query = query.where(Case.category == category)
    if district is not None:
        query = query.where(Case.district == district)
    if department is not None:
        query = query.where(exists().where(Task.case_id == Case.id, Task.department == department))
    if overdue is not None:
        query = query.where(_overdue() if overdue else not_(_overdue()))
    return query


def _overdue() -> ColumnElement[bool]:
    # The flag is set by the deadline scan, which runs every few seconds; an open case past
    # its deadline counts as overdue already, so the list never lags behind the clock.
    past_due = and_(
        Case.state.in_([s.value for s in OPEN_CASE_STATES]),
        Case.resolve_due_at.is_not(None),
        Case.resolve_due_at < now(),
    )
    return or_(Case.overdue.is_(True), past_due)


def _after(received_at: datetime, case_id: str) -> ColumnElement[bool]:
    return or_(
        Case.received_at < received_at,
        and_(Case.received_at == received_at, Case.id < case_id),
    )


def _encode(case: Case) -> str:
    return cursor_of(case.received_at, case.id)
