"""`POST /v1/monitor/alertmanager`: Prometheus Alertmanager's webhook (version 4).

Each alert is handled in a transaction of its own, so one alert that cannot be mapped does
not cost the others their cases; it is answered `refused` and kept as a dead letter. The
answer is 202 with one outcome per alert. Alertmanager retries a notification that failed,
and every step here is idempotent, so a retry opens nothing twice.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import ValidationError

from worker.api import problems
from worker.api.auth import require
from worker.api.limits import json_body
from worker.auth import Principal, Role
from worker.contracts.alertmanager import (
    Alert,
    AlertmanagerAnswer,
    AlertmanagerWebhook,
    AlertOutcome,
    AlertStatus,
    Outcome,
)
from worker.contracts.audit import Actor
from worker.db.guard import ConcurrentChange
from worker.db.session import get_engine, transaction
from worker.logging import get_logger
from worker.messaging.dead_letters import record_dead_letter
from worker.messaging.intake_queue import describe_errors
from worker.rules import Ruleset, RulesLoadError, registry
from worker.stages.alerts import Handled, file_firing, record_resolved

router = APIRouter(prefix="/v1/monitor", tags=["monitoring"])
log = get_logger("closeloop.api.monitor")

# A pipeline step may touch the same case at the same moment; its version guard then makes
# us read the case again rather than fail the notification.
ATTEMPTS = 3


@router.post(
    "/alertmanager",
    status_code=202,
    summary="Receive Alertmanager notifications: firing alerts open cases",
    dependencies=[Depends(json_body)],
    responses=problems.responses(401, 403, 413, 415, 422, 500)
    | {503: {"model": problems.Problem, "description": "The routing rules cannot be loaded"}},
)
def receive_alerts(
    notification: AlertmanagerWebhook,
    caller: Annotated[Principal, Depends(require(Role.monitor))],
) -> AlertmanagerAnswer:
    ruleset = rules_in_force()
    return AlertmanagerAnswer(
        alerts=[handle(ruleset, alert, caller.actor) for alert in notification.alerts]
    )


def rules_in_force() -> Ruleset:
    try:
        return registry.get()  # looks for a changed rules folder first
    except RulesLoadError as error:
        log.error("no routing rules to map alerts with", error=str(error))
        raise HTTPException(503, "The routing rules cannot be loaded; try again later.") from error


def handle(ruleset: Ruleset, alert: Alert, actor: Actor) -> AlertOutcome:
    try:
        handled = _with_retries(ruleset, alert, actor)
    except (LookupError, ValidationError) as error:
        reason = describe_errors(error) if isinstance(error, ValidationError) else str(error)
        _keep(alert, reason)
        return _outcome(alert, Handled(Outcome.refused), f"not a valid incident: {reason}")
    detail = "no case was opened for this alert" if handled.outcome is Outcome.unknown else None
    return _outcome(alert, handled, detail)


def _with_retries(ruleset: Ruleset, alert: Alert, actor: Actor) -> Handled:
    step = file_firing if alert.status is AlertStatus.firing else record_resolved
    attempts_left = ATTEMPTS
    while True:
        try:
            with transaction() as session:
                return step(session, ruleset, alert, actor=actor)
        except ConcurrentChange:
            attempts_left -= 1
            if not attempts_left:
                raise


def _outcome(alert: Alert, handled: Handled, detail: str | None) -> AlertOutcome:
    return AlertOutcome(
        fingerprint=alert.fingerprint,
        status=alert.status,
        outcome=handled.outcome,
        case_id=handled.case.id if handled.case else None,
        detail=detail,
    )


def _keep(alert: Alert, reason: str) -> None:
    record_dead_letter(
        get_engine(),
        kind="alert",
        reason=f"alert {alert.fingerprint} cannot become an incident: {reason}",
        body=alert.model_dump_json(by_alias=True),
        details={"fingerprint": alert.fingerprint},
    )
