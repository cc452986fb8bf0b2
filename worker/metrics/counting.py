"""What the Prometheus counters count, read off the audit store as it is written.

Every state change writes one audit event (DESIGN: "no state change without its audit
event"), so the counters listen to those events instead of to each stage: a case received,
a case closed, a webhook delivery's outcome. An event counts when its transaction commits;
one rolled back (or undone with its savepoint) never counts.

This module does not import `prometheus_client`: a worker serving its own metrics must set
its multiprocess folder before that import (see `worker.cli.worker`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from worker.db.models import AuditEvent, Case

_PENDING = "closeloop.metrics.pending"
_started: dict[str, float] = {}
_installed = {"sessions": False, "celery": False}

DELIVERY_OUTCOMES = {
    "delivery.succeeded": "delivered",
    "delivery.failed": "failed",
    "delivery.endpoint_disabled": "gone",
    "delivery.dead": "dead",
    "delivery.replayed": "replayed",
}


def install_session_counting() -> None:
    if _installed["sessions"]:
        return
    event.listen(Session, "after_flush", _note_events)
    event.listen(Session, "after_commit", _count_committed)
    event.listen(Session, "after_rollback", _forget)
    _installed["sessions"] = True


def _note_events(session: Session, _: Any) -> None:
    written = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not written:
        return
    cases = {obj.id: obj for obj in session if isinstance(obj, Case)}
    pending = session.info.setdefault(_PENDING, [])
    for audit in written:
        facts = _facts(audit.action, audit.to_state, cases.get(audit.case_id))
        if facts is not None:
            pending.append((audit, facts))


def note_written(
    session: Session, action: str, to_state: str | None = None, case: Case | None = None
) -> None:
    """An event written with a plain statement rather than as an `AuditEvent` object (never
    inside a savepoint, whose rollback this could not see): counted, like the others, when
    the transaction commits."""
    facts = _facts(action, to_state, case)
    if facts is not None:
        session.info.setdefault(_PENDING, []).append((None, facts))


def _facts(
    action: str, to_state: str | None, case: Case | None
) -> tuple[str, dict[str, str]] | None:
    if action == "case.received" and case is not None:
        return "received", {"category": case.category, "district": case.district or ""}
    if to_state == "closed" and case is not None:
        return "closed", {"department": case.lead_department or ""}
    if action in DELIVERY_OUTCOMES:
        return "delivery", {"outcome": DELIVERY_OUTCOMES[action]}
    return None


def _count_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its events count when the whole transaction commits
    pending = session.info.pop(_PENDING, [])
    if not pending:
        return
    from worker.metrics import prometheus

    for audit, (kind, labels) in pending:
        # An event flushed inside a savepoint that was rolled back is transient again.
        if audit is None or inspect(audit).persistent:
            prometheus.count(kind, labels)


def _forget(session: Session) -> None:
    # A savepoint's rollback makes its own events transient, which `_count_committed` skips;
    # only the whole transaction's rollback drops everything noted.
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)


def install_task_timing() -> None:
    """Time every Celery task (each pipeline stage is one) with Celery's own signals."""
    if _installed["celery"]:
        return
    from celery import signals

    signals.task_prerun.connect(_task_started, weak=False)
    signals.task_postrun.connect(_task_finished, weak=False)
    _installed["celery"] = True


def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _task_finished(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    began = _started.pop(task_id or "", None)
    if began is None or task is None:
        return
    from worker.metrics import prometheus

    stage = str(task.name).removeprefix("closeloop.")
    prometheus.observe_stage(stage, (state or "unknown").lower(), time.perf_counter() - began)


@contextmanager
def timed_stage(stage: str) -> Iterator[None]:
    """Time a stage run inside another's task (dispatch, right after triage) as its own."""
    from worker.metrics import prometheus

    began, outcome = time.perf_counter(), "failure"
    try:
        yield
        outcome = "success"
    finally:
        prometheus.observe_stage(stage, outcome, time.perf_counter() - began)
