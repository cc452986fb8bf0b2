"""End to end: a real worker dispatches a gas leak and delivers its tasks; nobody
acknowledges; a deadline scan (called here instead of beat) reminds the departments and
escalates, and the worker delivers those webhooks signed.

The worker runs on the wall clock, so here the deadlines are moved into the past rather than
the clock into the future: webhooks queued "in the future" would wait for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.factories import HOTLINE, incident
from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from worker.db.models import Case
from worker.db.session import session_factory
from worker.escalation import step_due
from worker.ledger.audit import timeline, verify
from worker.stages.intake import accept_incident
from worker.tasks.timers import scan_deadlines_once

GAS_LEAK = {
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "location": {"district": "gulou"},
}


@pytest.fixture
def running(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(pg_url, redis_url, tmp_path) as p:
        p.start_worker()
        yield p


def _backdate(p: Pipeline, case_id: str, by: timedelta) -> None:
    """As if the case had been dispatched `by` earlier: every deadline and plan step moves."""
    with session_factory(p.engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        for owner in (case, *case.tasks):
            owner.acknowledge_due_at = _earlier(owner.acknowledge_due_at, by)
            owner.resolve_due_at = _earlier(owner.resolve_due_at, by)
        case.escalation_plan = [
            {**step, "due_at": (step_due(step) - by).isoformat()} for step in case.escalation_plan
        ]


def _earlier(moment: datetime | None, by: timedelta) -> datetime | None:
    return moment - by if moment else None


def _delivered(p: Pipeline, case_id: str) -> int:
    with session_factory(p.engine)() as session:
        return sum(1 for e in timeline(session, case_id) if e.action == "delivery.succeeded")


def _received(p: Pipeline, event_type: str) -> list[str]:
    return sorted(r.department for r in p.receiver.all() if r.body["type"] == event_type)


def _scan_until(p: Pipeline, done: Callable[[], bool]) -> None:
    def scanned_and_done() -> bool:
        scan_deadlines_once(p.engine)
        return done()

    wait_for(scanned_and_done, timeout=60, every=0.5, what=lambda: f"scan\n{p.logs()[-4000:]}")


def _wait(p: Pipeline, event_type: str, departments: list[str]) -> None:
    wait_for(
        lambda: _received(p, event_type) == departments,
        timeout=60,
        what=lambda: f"{event_type} to {departments}\n{p.logs()[-4000:]}",
    )


def test_an_unacknowledged_gas_leak_reminds_and_escalates_for_real(running: Pipeline) -> None:
    with session_factory(running.engine)() as session, session.begin():
        case_id = accept_incident(session, incident(**GAS_LEAK), actor=HOTLINE).case.id
    _wait(running, "task.assigned", ["fire", "gas"])
    # The worker notes each delivery on the case; let it finish before we touch the case.
    wait_for(lambda: _delivered(running, case_id) == 2, timeout=30, what="delivery audit")
    _backdate(running, case_id, timedelta(minutes=16))
    # Beat scans every 15 s; here we scan until the escalation goes out. A scan whose write
    # collides with the worker noting a reminder's delivery on the same case leaves that
    # step to the next scan, exactly as it would under beat.
    _scan_until(running, lambda: _received(running, "task.escalated") == ["ops-centre"])
    _wait(running, "task.reminder", ["fire", "gas"])
    escalation = next(r for r in running.receiver.all() if r.body["type"] == "task.escalated")
    assert escalation.verified
    assert escalation.body["data"]["details"]["level"] == 1
    assert escalation.body["data"]["case"]["id"] == case_id
    assert all(r.verified for r in running.receiver.all())
    assert verify(running.engine).ok
