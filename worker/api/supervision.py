"""Supervisors step into a case: reassign it, escalate it, cancel it.

Each answers the case as `GET /v1/cases/{id}` shows it, after the change. A move the case's
state does not allow is a 409 that names the state; an unknown case is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from worker.actions.supervision import (
    ActionRefused,
    UnknownDepartment,
    cancel,
    escalate_by_hand,
    reassign,
)
from worker.api import problems
from worker.api.alertmanager import rules_in_force
from worker.api.auth import require
from worker.api.case_view import case_out
from worker.api.limits import json_body
from worker.auth import Principal, Role
from worker.contracts.case import CaseOut
from worker.contracts.supervision import CancelRequest, EscalateRequest, ReassignRequest
from worker.db.models import Case
from worker.db.session import transaction

router = APIRouter(prefix="/v1/cases", tags=["supervision"])

# Admin passes wherever supervisor does.
Supervisor = Annotated[Principal, Depends(require(Role.supervisor))]
ANSWERS = problems.responses(401, 403, 404, 409, 413, 415, 422, 500)


@router.post(
    "/{case_id}/reassign",
    summary="Give the case a new lead department, in a new round with fresh deadlines",
    dependencies=[Depends(json_body)],
    responses=ANSWERS,
)
def reassign_case(case_id: str, request: ReassignRequest, caller: Supervisor) -> CaseOut:
    ruleset = rules_in_force()

    def act(session: Session) -> Case | None:
        try:
            return reassign(
                session,
                case_id,
                department=request.department,
                reason=request.reason,
                actor=caller.actor,
                ruleset=ruleset,
            )
        except UnknownDepartment as error:
            problem = {"loc": ("body", "department"), "msg": str(error), "type": "value_error"}
            raise RequestValidationError([problem]) from error

    return _answer(case_id, act)


@router.post(
    "/{case_id}/escalate",
    summary="Raise the case one escalation level: the next step of its chain",
    dependencies=[Depends(json_body)],
    responses=ANSWERS,
)
def escalate_case(case_id: str, request: EscalateRequest, caller: Supervisor) -> CaseOut:
    ruleset = rules_in_force()
    return _answer(
        case_id,
        lambda session: escalate_by_hand(
            session, case_id, reason=request.reason, actor=caller.actor, ruleset=ruleset
        ),
    )


@router.post(
    "/{case_id}/cancel",
    summary="Cancel the case and every live task on it (again: the same answer)",
    dependencies=[Depends(json_body)],
    responses=ANSWERS,
)
def cancel_case(case_id: str, request: CancelRequest, caller: Supervisor) -> CaseOut:
    return _answer(
        case_id,
        lambda session: cancel(session, case_id, reason=request.reason, actor=caller.actor),
    )


def _answer(case_id: str, act: Callable[[Session], Case | None]) -> CaseOut:
    with transaction() as session:
        try:
            case = act(session)
        except ActionRefused as error:
            raise HTTPException(409, str(error)) from error
        if case is None:
            raise HTTPException(404, f"There is no case {case_id}.")
        return case_out(session, case)
