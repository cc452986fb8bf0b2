"""Tasks of the `pipeline` queue: monitor and dispatch, one case at a time."""

from __future__ import annotations

from structlog.contextvars import bound_contextvars

from worker.db.models import Case
from worker.db.session import get_engine, transaction
from worker.logging import get_logger
from worker.messaging.outbox import publish, take
from worker.metrics.counting import timed_stage
from worker.rules import Ruleset
from worker.rules.registry import get as rules_get
from worker.stages.dispatch import dispatch as dispatch_case
from worker.stages.triage import triage
from worker.tasks.app import app
from worker.tasks.base import ClosedLoopTask
from worker.tasks.names import DISPATCH, MONITOR

log = get_logger("closeloop.pipeline")


def rules_in_force() -> Ruleset:
    return rules_get()  # looks for a changed rules folder first


@app.task(name=MONITOR, base=ClosedLoopTask)
def monitor(case_id: str) -> None:
    """Triage a received case: normalise, set priority, fold duplicates; then dispatch it."""
    with bound_contextvars(case_id=case_id):
        with transaction() as session:
            triaged = triage(session, case_id, rules_in_force(), hold_dispatch=True)
        if triaged is not None and triaged.dispatch_message is not None:
            dispatch_here(case_id, triaged.dispatch_message, triaged.case)


def dispatch_here(case_id: str, message_id: int, triaged: Case | None = None) -> None:
    """Dispatch a case this process has just triaged, in a transaction of its own, instead of
    sending it through the broker to the dispatch task: the triage transaction held the
    dispatch message, and this one takes it. If dispatch fails here (a concurrent change to
    the case, the database gone), the held message is published at once and the dispatch
    task does the work with its usual retries; if the process dies first, the relay sends it
    within seconds.

    `triaged`, the case as the triage transaction committed it, is used as it is instead of
    being read again: if anyone changed the case in between, its version no longer matches,
    dispatch's write fails on the version guard, and the dispatch task takes over."""
    try:
        with timed_stage("pipeline.dispatch"), transaction() as session:
            if take(session, message_id):
                # Held here: the session's identity map holds a clean object only weakly.
                known = session.merge(triaged, load=False) if triaged is not None else None
                dispatch_case(session, case_id, rules_in_force())
                del known
    except Exception as error:
        log.warning(
            "dispatch right after triage failed; the dispatch task takes it over",
            error=f"{type(error).__name__}: {error}",
        )
        publish(get_engine(), [message_id])


@app.task(name=DISPATCH, base=ClosedLoopTask)
def dispatch(case_id: str) -> None:
    """Route a triaged case to its departments and queue their webhooks."""
    with bound_contextvars(case_id=case_id), transaction() as session:
        dispatch_case(session, case_id, rules_in_force())
