"""What the Prometheus counters count, told by the ledger (`worker.ledger.written`).

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

from worker.ledger import written
from worker.ledger.written import Written

_started: dict[str, float] = {}
_installed = {"celery": False}

DELIVERY_OUTCOMES = {
    "delivery.succeeded": "delivered",
    "delivery.failed": "failed",
    "delivery.endpoint_disabled": "gone",
    "delivery.dead": "dead",
    "delivery.replayed": "replayed",
}


def install_session_counting() -> None:
    """Count what the ledger writes, as each transaction commits."""
    written.subscribe(_count)


def _count(facts: list[Written]) -> None:
    from worker.metrics import prometheus

    for fact in facts:
        counted = _kind_and_labels(fact)
        if counted is not None:
            prometheus.count(*counted)


def _kind_and_labels(fact: Written) -> tuple[str, dict[str, str]] | None:
    if fact.action == "case.received" and fact.category is not None:
        return "received", {"category": fact.category, "district": fact.district or ""}
    if fact.to_state == "closed" and fact.category is not None:
        return "closed", {"department": fact.lead_department or ""}
    if fact.action in DELIVERY_OUTCOMES:
        return "delivery", {"outcome": DELIVERY_OUTCOMES[fact.action]}
    return None


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
