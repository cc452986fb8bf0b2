"""Tasks of the `pipeline` queue: monitor and dispatch, one case at a time."""

from __future__ import annotations

from structlog.contextvars import bound_contextvars

from worker.celery_app import app
from worker.db.session import transaction
from worker.rules import Ruleset
from worker.rules.registry import get as rules_get
from worker.rules.registry import maybe_reload
from worker.stages.dispatch import dispatch as dispatch_case
from worker.stages.monitor import triage
from worker.tasks.names import DISPATCH, MONITOR
from worker.tasks_base import ClosedLoopTask


def rules_in_force() -> Ruleset:
    maybe_reload()
    return rules_get()


@app.task(name=MONITOR, base=ClosedLoopTask)
def monitor(case_id: str) -> None:
    """Triage a received case: normalise, set priority, fold duplicates."""
    with bound_contextvars(case_id=case_id), transaction() as session:
        triage(session, case_id, rules_in_force())


@app.task(name=DISPATCH, base=ClosedLoopTask)
def dispatch(case_id: str) -> None:
    """Route a triaged case to its departments and queue their webhooks."""
    with bound_contextvars(case_id=case_id), transaction() as session:
        dispatch_case(session, case_id, rules_in_force())
