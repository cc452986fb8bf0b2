"""The report's queries run side by side on one snapshot: each sees the store as it was when
the report began, even when a case is filed while they run; and the report is the same
whether its queries run at once or in turn."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.metrics.test_report import END, SHANGHAI, START
from tests.support.factories import HOTLINE, incident
from tests.support.metrics_dataset import seed
from worker.config import reset_settings_cache
from worker.db.models import Case
from worker.db.session import session_factory
from worker.metrics.definitions import GroupBy
from worker.metrics.report import build_report
from worker.metrics.snapshot import run_all
from worker.stages.intake import accept_incident


def _count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Case)) or 0)


def test_every_query_sees_one_instant_even_as_cases_are_filed(pg_engine: Engine) -> None:
    filed = threading.Event()

    def file_then_count(session: Session) -> int:
        with session_factory(pg_engine)() as other, other.begin():
            accept_incident(other, incident(), actor=HOTLINE)
        filed.set()
        return _count(session)

    def count_after_the_filing(session: Session) -> int:
        assert filed.wait(10)
        return _count(session)

    with session_factory(pg_engine)() as session:
        answers = run_all(
            session, {"first": file_then_count, "second": count_after_the_filing}, parallel=2
        )
        assert answers == {"first": 0, "second": 0}
        assert _count(session) == 1  # outside the report, the new case is there


@pytest.mark.parametrize("by", list(GroupBy))
def test_at_once_or_in_turn_the_report_is_the_same(pg_engine: Engine, by: GroupBy) -> None:
    seed(pg_engine, START)
    with session_factory(pg_engine)() as session:
        at_once = build_report(session, START, END, by, SHANGHAI)
    reset_settings_cache()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLOSELOOP_METRICS_PARALLEL_QUERIES", "1")
        reset_settings_cache()
        with session_factory(pg_engine)() as session:
            in_turn = build_report(session, START, END, by, SHANGHAI)
    reset_settings_cache()
    assert at_once == in_turn
    assert at_once.total.received > 0
