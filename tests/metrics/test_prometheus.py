"""Prometheus: counters driven by committed audit events, and stage timings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from tests.support.factories import SYSTEM, filed_case, incident, walk_to
from worker.contracts.enums import CaseState as C
from worker.db.models import Case
from worker.db.session import session_factory
from worker.ledger.lifecycle import record
from worker.metrics.counting import install_session_counting, install_task_timing
from worker.metrics.prometheus import DATABASE_GAUGES
from worker.stages.intake import accept_incident

RECEIVED = "closeloop_cases_received_total"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def counting() -> None:
    install_session_counting()
    install_task_timing()


def test_a_committed_case_counts_once_by_category_and_district(pg_engine: Engine) -> None:
    before = _value(RECEIVED, category="road.pothole", district="xuanwu")
    filed_case(pg_engine, category="road.pothole", location={"district": "xuanwu"})
    assert _value(RECEIVED, category="road.pothole", district="xuanwu") == before + 1


def test_a_rolled_back_case_does_not_count(pg_engine: Engine) -> None:
    before = _value(RECEIVED, category="road.pothole", district="gulou")
    with session_factory(pg_engine)() as session:
        accept_incident(session, incident(category="road.pothole"), actor=SYSTEM)
        session.flush()
        session.rollback()
    assert _value(RECEIVED, category="road.pothole", district="gulou") == before


def test_an_event_undone_with_its_savepoint_does_not_count(pg_engine: Engine) -> None:
    case_id = filed_case(pg_engine)
    before = _value("closeloop_webhook_deliveries_total", outcome="dead")
    with session_factory(pg_engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        savepoint = session.begin_nested()
        record(session, case, actor=SYSTEM, action="delivery.dead")
        savepoint.rollback()
        record(session, session.get_one(Case, case_id), actor=SYSTEM, action="delivery.dead")
    assert _value("closeloop_webhook_deliveries_total", outcome="dead") == before + 1


def test_closing_counts_for_the_lead_department(pg_engine: Engine) -> None:
    case_id = filed_case(pg_engine)
    with session_factory(pg_engine)() as session, session.begin():
        session.get_one(Case, case_id).lead_department = "roads"
    before = _value("closeloop_cases_closed_total", department="roads")
    path = [C.triaged, C.dispatched, C.accepted, C.resolved, C.closed]
    walk_to(pg_engine, case_id, path)
    assert _value("closeloop_cases_closed_total", department="roads") == before + 1
    walk_to(pg_engine, case_id, [C.dispatched, C.accepted, C.resolved, C.closed])  # reopened
    assert _value("closeloop_cases_closed_total", department="roads") == before + 2


def test_each_stage_is_timed(service: dict[str, str]) -> None:
    from worker.tasks.timers import sweep

    stage = {"stage": "timers.sweep_stalled", "outcome": "success"}
    before = _value("closeloop_stage_duration_seconds_count", **stage)
    sweep.apply()
    assert _value("closeloop_stage_duration_seconds_count", **stage) == before + 1
    assert _value("closeloop_stage_duration_seconds_sum", **stage) > 0


def test_the_grafana_dashboard_shows_only_series_we_expose() -> None:
    board = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "closeloop.json"
    dashboard = json.loads(board.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"closeloop_[a-z_]+", expr)}
    exposed = set(DATABASE_GAUGES) | {
        f"{family.name}{suffix}"
        for family in REGISTRY.collect()
        if family.name.startswith("closeloop_")
        for suffix in ("_total", "_bucket", "_count", "_sum")
    }
    assert used <= exposed, used - exposed
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert len(shown) == 7  # received, closed, overdue, open, dead, stage times, deliveries
