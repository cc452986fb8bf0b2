"""Beat's close-unanswered task: on the schedule every minute, and closing what is due."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from tests.support.journey import (
    BURST_PIPE,
    case_of,
    department,
    dispatched,
    frozen,
    on_task,
    task_of,
)
from worker.actions.department import accept, resolve
from worker.contracts.enums import CaseState
from worker.db.session import get_engine
from worker.rules import load_ruleset
from worker.stages.closeloop import NO_ANSWER
from worker.tasks.schedule import beat_schedule
from worker.tasks.timers import CLOSE_UNANSWERED, close_unanswered

RULES = Path(__file__).resolve().parents[2] / "routing_rules"


def test_beat_closes_unanswered_cases_every_minute() -> None:
    entries = [e for e in beat_schedule().values() if e["task"] == CLOSE_UNANSWERED]
    assert [e["schedule"] for e in entries] == [60.0]


def test_the_task_closes_a_case_once_its_window_passed(service: dict[str, str]) -> None:
    engine: Engine = get_engine()
    with frozen() as clock:
        case_id = dispatched(engine, load_ruleset(RULES), **BURST_PIPE)
        water = task_of(engine, case_id, "water")
        on_task(engine, water, lambda s, t: accept(s, t, department("water")))
        on_task(engine, water, lambda s, t: resolve(s, t, department("water"), "repaired"))
        assert close_unanswered() == 0
        clock.advance(timedelta(hours=48))
        assert close_unanswered() == 1
    case = case_of(engine, case_id)
    assert (case.state, case.close_reason) == (CaseState.closed, NO_ANSWER)
