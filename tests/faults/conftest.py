"""The fault suite: real PostgreSQL, Redis, worker and beat processes, and real breakage.

Every scenario files incidents, breaks something while they flow, and then proves the
promise: every accepted incident is a routed, audited case, with one task per department and
one delivery each; `closeloop reconcile` finds nothing missing; the audit chains verify.
Each scenario stops by itself (every wait has a deadline).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from worker.db.models import Case, Delivery, Task
from worker.db.session import session_factory
from worker.ledger.audit import verify
from worker.ops.reconcile import reconcile

# Short enough that a killed worker's messages come back, and stalled cases are re-driven,
# within a test's patience; the schedule keeps the published shape, shrunk.
FAULT_SETTINGS = {
    "broker_visibility_timeout": "8",
    "stalled_after": "10",
    "webhook_schedule": "0s,1s,2s,2s,3s,3s,5s,5s",
    "webhook_timeout": "2",
    "webhook_circuit_cooldown": "2s",
    "log_level": "WARNING",
}
# 2,000 incidents, five SIGKILLs: about 75 s on the CI machine (CLOSELOOP_FAULT_INCIDENTS=N).
INCIDENTS = int(os.environ.get("CLOSELOOP_FAULT_INCIDENTS", "2000"))


@pytest.fixture
def faulty(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(pg_url, redis_url, tmp_path, data_dir=str(tmp_path), **FAULT_SETTINGS) as p:
        yield p


def wait_until_complete(p: Pipeline, external_ids: set[str], timeout: float = 720) -> None:
    """Until every filed incident is dispatched and every delivery delivered."""

    def complete() -> bool:
        with session_factory(p.engine)() as session:
            dispatched = session.scalar(
                select(func.count()).where(
                    Case.external_id.in_(external_ids), Case.state == "dispatched"
                )
            )
            waiting = session.scalar(select(func.count()).where(Delivery.state != "delivered"))
        return dispatched == len(external_ids) and waiting == 0

    wait_for(complete, timeout=timeout, every=1.0, what=lambda: progress(p) + p.logs()[-3000:])


def progress(p: Pipeline) -> str:
    with session_factory(p.engine)() as session:
        cases = dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
        deliveries = dict(
            session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
    return f"cases {cases}, deliveries {deliveries}\n"


def assert_promise_kept(p: Pipeline, external_ids: set[str]) -> None:
    """Every incident a case past dispatch; one task per department and one delivery each;
    receivers saw each task under one webhook-id; reconcile and audit verify are clean."""
    with session_factory(p.engine)() as session:
        cases = dict(
            session.execute(
                select(Case.external_id, Case.id).where(Case.external_id.in_(external_ids))
            ).all()
        )
        assert set(cases) == external_ids, f"{len(external_ids - set(cases))} incidents lost"
        duplicates = session.execute(
            select(Task.case_id, Task.department, Task.dispatch_round, func.count())
            .group_by(Task.case_id, Task.department, Task.dispatch_round)
            .having(func.count() > 1)
        ).all()
        assert duplicates == []
        tasks = session.scalar(select(func.count()).select_from(Task))
        deliveries = session.scalar(
            select(func.count()).where(Delivery.event_type == "task.assigned")
        )
        assert tasks == deliveries
        report = reconcile(session)
    assert report.missing == 0, report.as_dict()
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for received in p.receiver.all():
        assert received.verified
        data = received.body["data"]
        ids[(data["case"]["id"], data["task"]["id"])].add(received.webhook_id)
    assert len(ids) == tasks, "a task's webhook never arrived"
    assert all(len(webhook_ids) == 1 for webhook_ids in ids.values())
    audit = verify(p.engine)
    assert audit.ok, audit.problems[:3]
