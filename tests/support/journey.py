"""A case's journey for stage tests: filed, triaged and dispatched by the real stages on the
example city's rules, then acted on by departments, one committed transaction per step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.support.factories import HOTLINE, incident
from worker.clock import FrozenClock, use_clock
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.db.models import Case, Delivery, Task
from worker.db.session import session_factory
from worker.ledger.audit import timeline
from worker.rules import Ruleset
from worker.stages.dispatch import dispatch
from worker.stages.intake import accept_incident
from worker.stages.triage import triage

RULES = Path(__file__).resolve().parents[2] / "routing_rules"
# A weekday morning: no night or weekend route of the example city applies.
MONDAY_MORNING = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

GAS_LEAK = {
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "location": {"district": "gulou"},
}
BURST_PIPE = {"category": "water.pipe_burst", "title": "小区门口水管爆裂"}
# Market leads, gov-xincheng assists; returned by market it goes to housing.
ELEVATOR = {
    "category": "housing.elevator_fault",
    "title": "电梯经常停运",
    "location": {"district": "xincheng"},
}

Result = TypeVar("Result")


@contextmanager
def frozen(at: datetime = MONDAY_MORNING) -> Iterator[FrozenClock]:
    clock = FrozenClock(at)
    previous = use_clock(clock)
    try:
        yield clock
    finally:
        use_clock(previous)


def department(name: str) -> Actor:
    return Actor(kind=ActorKind.department, id=name)


def step(engine: Engine, work: Callable[[Session], Result]) -> Result:
    """Run `work` in a transaction of its own and commit."""
    with session_factory(engine)() as session, session.begin():
        return work(session)


def dispatched(engine: Engine, ruleset: Ruleset, **overrides: Any) -> str:
    """A case filed, triaged and dispatched; its id."""
    case_id = step(
        engine, lambda s: accept_incident(s, incident(**overrides), actor=HOTLINE).case.id
    )
    step(engine, lambda s: triage(s, case_id, ruleset))
    redispatch(engine, case_id, ruleset)
    return case_id


def redispatch(engine: Engine, case_id: str, ruleset: Ruleset) -> None:
    step(engine, lambda s: dispatch(s, case_id, ruleset))


def task_of(engine: Engine, case_id: str, department_id: str) -> str:
    """The id of the department's task in the case's latest round it holds one in."""
    with session_factory(engine)() as session:
        found = session.scalars(
            select(Task.id)
            .where(Task.case_id == case_id, Task.department == department_id)
            .order_by(Task.dispatch_round.desc())
        ).first()
    assert found is not None, f"{department_id} holds no task on case {case_id}"
    return found


def on_task(engine: Engine, task_id: str, work: Callable[[Session, Task], Result]) -> Result:
    return step(engine, lambda s: work(s, s.get_one(Task, task_id)))


def case_of(engine: Engine, case_id: str) -> Case:
    with session_factory(engine)() as session:
        return session.get_one(Case, case_id)


def task_row(engine: Engine, task_id: str) -> Task:
    with session_factory(engine)() as session:
        return session.get_one(Task, task_id)


def actions(engine: Engine, case_id: str) -> list[str]:
    with session_factory(engine)() as session:
        return [event.action for event in timeline(session, case_id)]


def event_count(engine: Engine, case_id: str) -> int:
    return len(actions(engine, case_id))


def last_event(engine: Engine, case_id: str, action: str) -> dict[str, Any]:
    with session_factory(engine)() as session:
        found = [e for e in timeline(session, case_id) if e.action == action]
        assert found, f"no {action} on case {case_id}"
        return dict(found[-1].data)


def deliveries(engine: Engine, case_id: str) -> list[tuple[str, str]]:
    """(department, event type) of every delivery queued on the case, oldest first."""
    with session_factory(engine)() as session:
        rows = session.execute(
            select(Delivery.department, Delivery.event_type)
            .where(Delivery.case_id == case_id)
            .order_by(Delivery.created_at, Delivery.id)
        )
        return [(d, e) for d, e in rows]


def delivery_details(engine: Engine, case_id: str, event_type: str) -> list[dict[str, Any]]:
    with session_factory(engine)() as session:
        payloads = session.scalars(
            select(Delivery.payload).where(
                Delivery.case_id == case_id, Delivery.event_type == event_type
            )
        )
        return [dict(p["details"]) for p in payloads]


def count(engine: Engine, model: type[Any], **where: Any) -> int:
    with session_factory(engine)() as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(session.scalar(query) or 0)
