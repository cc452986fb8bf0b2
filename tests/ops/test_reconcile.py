"""`closeloop reconcile` finds every kind of gap, and nothing where there is none."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from tests.support.factories import HOTLINE, incident
from worker.cli.main import app
from worker.clock import FrozenClock, now, use_clock
from worker.db.models import Delivery, Task, new_id
from worker.db.session import session_factory, transaction
from worker.messaging.outbox import flush_marks
from worker.ops.reconcile import reconcile
from worker.rules import load_ruleset
from worker.stages.dispatch import dispatch
from worker.stages.intake import accept_incident
from worker.stages.triage import triage

RULES = load_ruleset(Path(__file__).resolve().parents[2] / "routing_rules")


def _dispatched(engine: Engine, **overrides: object) -> str:
    with session_factory(engine)() as session, session.begin():
        case_id = accept_incident(session, incident(**overrides), actor=HOTLINE).case.id
    for stage in (triage, dispatch):
        with session_factory(engine)() as session, session.begin():
            stage(session, case_id, RULES)  # type: ignore[operator]
    return case_id


def _report_later(engine: Engine) -> object:
    flush_marks()  # the messages this process sent, marked published
    previous = use_clock(FrozenClock(now() + timedelta(minutes=5)))
    try:
        with session_factory(engine)() as session:
            return reconcile(session)
    finally:
        use_clock(previous)


def _deliver(engine: Engine, case_id: str) -> None:
    with session_factory(engine)() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.case_id == case_id)
            .values(state="delivered", next_attempt_at=None, delivered_at=now())
        )


def test_a_routed_case_is_complete(pg_engine: Engine, service: dict[str, str]) -> None:
    _deliver(pg_engine, _dispatched(pg_engine, category="gas.leak", title="煤气泄漏"))
    report = _report_later(pg_engine)
    assert report.missing == 0  # type: ignore[attr-defined]
    assert report.cases_by_state == {"dispatched": 1}  # type: ignore[attr-defined]
    assert report.tasks == 2  # type: ignore[attr-defined]
    assert report.deliveries_by_state == {"delivered": 2}  # type: ignore[attr-defined]


@pytest.mark.parametrize("state", ["pending", "queued", "sending"])
def test_deliveries_stuck_past_their_next_attempt_are_missing_and_say_how_late(
    pg_engine: Engine, service: dict[str, str], state: str
) -> None:
    stuck = _dispatched(pg_engine, category="gas.leak", title="煤气泄漏")
    _deliver(pg_engine, on_time := _dispatched(pg_engine, category="water.outage", title="停水"))
    with session_factory(pg_engine)() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.case_id == on_time)
            .values(state="pending", next_attempt_at=now() + timedelta(minutes=4))
        )
        session.execute(
            update(Delivery)
            .where(Delivery.case_id == stuck)
            .values(state=state, next_attempt_at=now() - timedelta(minutes=3))
        )
    report = _report_later(pg_engine)  # five minutes on: eight past due, one to go
    late = report.late_deliveries  # type: ignore[attr-defined]
    assert {d.state for d in late} == {state}
    assert len(late) == 2
    assert all(8 * 60 - 5 <= d.late_seconds <= 8 * 60 + 5 for d in late)
    assert report.missing == 2  # type: ignore[attr-defined]
    assert report.as_dict()["late_deliveries"][0]["late_seconds"] >= 8 * 60 - 5  # type: ignore[attr-defined]


def test_the_command_names_late_deliveries(pg_engine: Engine, service: dict[str, str]) -> None:
    case_id = _dispatched(pg_engine, category="gas.leak", title="煤气泄漏")
    flush_marks()
    with session_factory(pg_engine)() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.case_id == case_id)
            .values(next_attempt_at=now() - timedelta(minutes=7, seconds=30))
        )
    result = CliRunner().invoke(app, ["reconcile"])
    assert result.exit_code == 1, result.output
    assert "MISSING deliveries late past their next attempt: 2" in result.output
    assert "7 min 30 s late" in result.output or "7 min 31 s late" in result.output
    assert "missing: 2" in result.output


def test_every_gap_is_named(pg_engine: Engine, service: dict[str, str]) -> None:
    complete = _dispatched(pg_engine, category="water.outage", title="停水")
    broken = _dispatched(pg_engine, category="gas.leak", title="煤气泄漏", external_id="b")
    with session_factory(pg_engine)() as session, session.begin():
        stuck = accept_incident(session, incident(external_id="s"), actor=HOTLINE).case.id
        session.add(Task(id=new_id(), case_id=complete, department="roads", role="assisting",
                         state="assigned", dispatch_round=1))  # fmt: skip
        session.execute(update(Delivery).where(Delivery.case_id == broken).values(state="dead"))
    report = _report_later(pg_engine)
    assert report.stalled_cases == [stuck]  # type: ignore[attr-defined]
    assert len(report.tasks_without_delivery) == 1  # type: ignore[attr-defined]
    assert len(report.dead_deliveries) == 2  # type: ignore[attr-defined]
    assert len(report.late_deliveries) == 1  # the complete case's, never sent
    assert report.missing == 5  # type: ignore[attr-defined]


def test_the_command_exits_1_when_something_is_missing(
    pg_engine: Engine, service: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    with transaction() as session:
        accept_incident(session, incident(), actor=HOTLINE)
    flush_marks()  # its message was sent: marked published before reconcile looks
    fresh = runner.invoke(app, ["reconcile"])
    assert fresh.exit_code == 0, fresh.output  # in flight, within the grace period
    assert "missing: 0" in fresh.output
    late = runner.invoke(app, ["reconcile", "--grace", "0", "--json"])
    assert late.exit_code == 1
    assert '"missing": 1' in late.output
