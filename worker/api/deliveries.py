"""Webhook deliveries for supervisors: see the dead letters, replay them one by one or in bulk,
retry a pending one now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from worker.api import links, problems
from worker.api.auth import require
from worker.api.limits import json_body
from worker.auth import Principal, Role
from worker.db.models import Delivery
from worker.db.session import session_factory, transaction
from worker.webhooks import dead_ids, find_deliveries, replay_deliveries, retry_deliveries_now

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])

# Admin passes wherever supervisor does.
Supervisor = Annotated[Principal, Depends(require(Role.supervisor))]


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt_no: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float | None


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    webhook_id: str = Field(description="Stable across every retry and replay.")
    case_id: str
    task_id: str | None
    department: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    limit: int
    offset: int


class ReplayRequest(BaseModel):
    """Either the deliveries to replay by id, or a filter over the dead letters."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, max_length=1000)
    department: str | None = None
    event_type: str | None = None
    case_id: str | None = None


class ReplayOut(BaseModel):
    replayed: list[str]
    skipped: dict[str, str] = Field(description="Delivery id and why it was not replayed.")


class RetryOut(BaseModel):
    retried: list[str] = Field(description="Deliveries whose next attempt is now due.")


# Past this, page with a filter (state, department, case): the database counts every row it
# skips, and its offsets stop at 2^63 anyway.
MAX_OFFSET = 100_000

State = Literal["pending", "queued", "sending", "delivered", "dead"]


@router.get(
    "",
    summary="Deliveries, newest change first; `state=dead` for the dead letters",
    responses=problems.responses(401, 403, 422, 500) | links.delivery_page(),
)
def list_deliveries(
    _: Supervisor,
    state: State | None = None,
    department: str | None = None,
    event_type: str | None = None,
    case_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> DeliveryPage:
    with session_factory()() as session:
        found = find_deliveries(
            session,
            state=state,
            department=department,
            event_type=event_type,
            case_id=case_id,
            limit=limit,
            offset=offset,
        )
        items = [DeliveryOut.model_validate(d) for d in found]
    return DeliveryPage(items=items, limit=limit, offset=offset)


@router.get(
    "/{delivery_id}",
    summary="One delivery with every attempt",
    responses=problems.responses(401, 403, 404, 422, 500),
)
def get_delivery(delivery_id: str, _: Supervisor) -> DeliveryDetail:
    with session_factory()() as session:
        return DeliveryDetail.model_validate(_get(session, delivery_id))


@router.post(
    "/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Replay many: by ids, or every dead letter matching a filter",
    dependencies=[Depends(json_body)],
    responses=problems.responses(401, 403, 413, 415, 422, 500),
)
def replay_many(request: ReplayRequest, principal: Supervisor) -> ReplayOut:
    with transaction() as session:
        ids = request.ids
        if ids is None:
            ids = dead_ids(
                session,
                department=request.department,
                event_type=request.event_type,
                case_id=request.case_id,
            )
        report = replay_deliveries(session, ids, actor=principal.actor)
    return ReplayOut(replayed=report.replayed, skipped=report.skipped)


@router.post(
    "/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a dead (or delivered) delivery again, with the same webhook-id",
    responses=problems.responses(401, 403, 404, 409, 422, 500),
)
def replay_one(delivery_id: str, principal: Supervisor) -> ReplayOut:
    with transaction() as session:
        _get(session, delivery_id)
        report = replay_deliveries(session, [delivery_id], actor=principal.actor)
    if report.skipped:
        raise HTTPException(status.HTTP_409_CONFLICT, report.skipped[delivery_id])
    return ReplayOut(replayed=report.replayed, skipped={})


@router.post(
    "/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Make a pending delivery's next attempt due now (same delivery, same webhook-id)",
    responses=problems.responses(401, 403, 404, 409, 422, 500),
)
def retry_now(delivery_id: str, principal: Supervisor) -> RetryOut:
    with transaction() as session:
        _get(session, delivery_id)
        report = retry_deliveries_now(session, [delivery_id], actor=principal.actor)
    if report.skipped:
        raise HTTPException(status.HTTP_409_CONFLICT, report.skipped[delivery_id])
    return RetryOut(retried=report.replayed)


def _get(session: Session, delivery_id: str) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery {delivery_id}")
    return delivery
