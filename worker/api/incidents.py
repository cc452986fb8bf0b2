"""`POST /v1/incidents`: file an incident; it becomes a case, exactly once.

A repeat (same `Idempotency-Key` from the same token, or same source and external id)
answers like the first filing, with the same case and `created: false`; the same key with a
different incident is refused with 422. Both answer 202: either way the case is
accepted and on its way through the pipeline, and a client that retries after a lost answer
should see the same status it would have seen the first time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, Field

from worker.api import links, problems
from worker.api.auth import require
from worker.api.limits import json_body
from worker.auth import Principal, Role
from worker.contracts.enums import CaseState
from worker.contracts.incident import Incident
from worker.db.session import transaction
from worker.idempotency import Key
from worker.stages.intake import accept_incident

router = APIRouter(prefix="/v1", tags=["intake"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="A unique string (a UUID is best), your token's own; a retry with it and "
        "the same body does nothing new, the same key with another body is refused with 422.",
    ),
]


class Filed(BaseModel):
    case_id: str
    state: CaseState
    created: bool = Field(description="False when this repeated an earlier filing.")


@router.post(
    "/incidents",
    status_code=202,
    summary="File an incident",
    dependencies=[Depends(json_body)],
    responses=problems.responses(401, 403, 413, 415, 422, 500) | links.filed(202),
)
def file_incident(
    incident: Incident,
    response: Response,
    caller: Annotated[Principal, Depends(require(Role.hotline, Role.monitor, Role.admin))],
    idempotency_key: IdempotencyKey = None,
) -> Filed:
    """Open a case for the incident (or find the one an earlier identical filing opened)."""
    with transaction() as session:
        accepted = accept_incident(
            session,
            incident,
            actor=caller.actor,
            idempotency_key=Key.of_token(caller.token_id, idempotency_key),
        )
        case_id, state = accepted.case.id, CaseState(accepted.case.state)
    response.headers["Location"] = f"/v1/cases/{case_id}"
    return Filed(case_id=case_id, state=state, created=accepted.created)
