"""Closing the loop: the citizen's answer at the callback, and a supervisor's reopening.

Both need the routing rules in force: a reopened case gets fresh deadlines of the length
the rules give it now.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.orm import Session

from worker.api import problems
from worker.api.alertmanager import rules_in_force
from worker.api.attempts import in_transaction
from worker.api.auth import require
from worker.api.incidents import IdempotencyKey
from worker.api.limits import json_body
from worker.auth import Principal, Role
from worker.contracts.callback import CallbackOut, Feedback, Reopen
from worker.contracts.case import CaseSummary
from worker.db.models import Case
from worker.stages.closeloop import NotNow, record_feedback, reopen

router = APIRouter(prefix="/v1/cases", tags=["close loop"])

_RESPONSES = problems.responses(401, 403, 404, 409, 413, 415, 422, 500) | {
    503: {"model": problems.Problem, "description": "The routing rules cannot be loaded"}
}


@router.post(
    "/{case_id}/feedback",
    summary="Record the citizen's answer: solved and satisfied closes, anything else reopens",
    dependencies=[Depends(json_body)],
    responses=_RESPONSES,
)
def feedback(
    case_id: str,
    answer: Feedback,
    caller: Annotated[Principal, Depends(require(Role.hotline, Role.supervisor))],
    idempotency_key: IdempotencyKey = None,
) -> CallbackOut:
    ruleset = rules_in_force()

    def work(session: Session) -> CallbackOut:
        case = _case(session, case_id)
        with _out_of_turn_is_409():
            callback = record_feedback(
                session,
                case,
                caller.actor,
                answer.solved,
                answer.satisfied,
                answer.comment,
                ruleset=ruleset,
                idempotency_key=idempotency_key,
            )
        return CallbackOut(
            outcome=callback.outcome,
            solved=callback.solved,
            satisfied=callback.satisfied,
            comment=callback.comment,
            recorded_by=callback.recorded_by,
            recorded_at=callback.recorded_at,
            case=CaseSummary.model_validate(case),
        )

    return in_transaction(work)


@router.post(
    "/{case_id}/reopen",
    summary="Send a resolved or closed case back to its lead, one escalation level up",
    dependencies=[Depends(json_body)],
    responses=_RESPONSES,
)
def reopen_case(
    case_id: str,
    request: Reopen,
    caller: Annotated[Principal, Depends(require(Role.supervisor))],
) -> CaseSummary:
    ruleset = rules_in_force()

    def work(session: Session) -> CaseSummary:
        case = _case(session, case_id)
        with _out_of_turn_is_409():
            reopen(session, case, caller.actor, request.reason, ruleset=ruleset)
        return CaseSummary.model_validate(case)

    return in_transaction(work)


def _case(session: Session, case_id: str) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise HTTPException(404, f"There is no case {case_id}.")
    return case


@contextmanager
def _out_of_turn_is_409() -> Iterator[None]:
    try:
        yield
    except NotNow as error:
        raise HTTPException(409, str(error)) from error
