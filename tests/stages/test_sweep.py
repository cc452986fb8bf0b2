"""The sweeper: a case stuck before dispatch is re-driven, a slow one not twice in a row."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from tests.support.factories import HOTLINE, incident
from worker.clock import FrozenClock, now, use_clock
from worker.db.models import OutboxMessage
from worker.db.session import session_factory
from worker.messaging.broker import claim_once
from worker.stages.intake import accept_incident
from worker.stages.sweep import sweep_stalled
from worker.tasks.names import MONITOR
from worker.tasks.timers import _claim_redrives

STALLED_AFTER = timedelta(seconds=60)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    clock = FrozenClock(now())
    previous = use_clock(clock)
    yield clock
    use_clock(previous)


def _file(engine: Engine) -> str:
    with session_factory(engine)() as session, session.begin():
        return accept_incident(session, incident(), actor=HOTLINE).case.id


def _sweep(engine: Engine, **kwargs: object) -> int:
    with session_factory(engine)() as session, session.begin():
        return sweep_stalled(session, older_than=STALLED_AFTER, **kwargs)  # type: ignore[arg-type]


def _monitor_messages(engine: Engine, case_id: str) -> int:
    with session_factory(engine)() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.case_id == case_id, OutboxMessage.task_name == MONITOR
                )
            )
            or 0
        )


def test_only_a_case_waiting_longer_than_the_pipeline_takes_is_re_driven(
    pg_engine: Engine, clock: FrozenClock
) -> None:
    old = _file(pg_engine)
    clock.advance(STALLED_AFTER + timedelta(seconds=1))
    new = _file(pg_engine)
    assert _sweep(pg_engine) == 1
    assert _monitor_messages(pg_engine, old) == 2  # intake's, and the sweeper's
    assert _monitor_messages(pg_engine, new) == 1


def test_with_a_claim_a_slow_case_is_re_driven_once_per_period(
    service: dict[str, str], pg_engine: Engine, clock: FrozenClock
) -> None:
    case_id = _file(pg_engine)
    clock.advance(STALLED_AFTER * 2)
    assert _sweep(pg_engine, claim=_claim_redrives) == 1
    assert _sweep(pg_engine, claim=_claim_redrives) == 0  # still waiting behind a backlog
    assert _sweep(pg_engine) == 1  # without a claim, every sweep piles on another message
    assert _monitor_messages(pg_engine, case_id) == 3


def test_a_claim_lapses_after_its_period(service: dict[str, str]) -> None:
    assert claim_once(["a", "b"], 1, kind="test") == {"a", "b"}
    assert claim_once(["a", "c"], 1, kind="test") == {"c"}
    time.sleep(1.2)
    assert claim_once(["a", "b", "c"], 1, kind="test") == {"a", "b", "c"}
