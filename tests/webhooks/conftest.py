"""Webhook tests: the service on the test's PostgreSQL and Redis, a schedule in seconds, a
clock the test moves, and departments whose endpoints are local HTTP receivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.support.factories import filed_case
from tests.support.scripted_receiver import Receiver, new_secret
from tests.support.service import service_environment
from worker.clock import FrozenClock, use_clock
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.db.models import AuditEvent, Case, Delivery, Task
from worker.db.session import session_factory, transaction
from worker.rules import registry
from worker.webhooks import Endpoint, build_payload, queue_delivery, queue_due, send_delivery

SUPERVISOR = Actor(kind=ActorKind.supervisor, id="supervisor-test")

WEBHOOK_SETTINGS = {
    "webhook_schedule": "0s,1s,1s",
    "webhook_jitter": "0",
    "webhook_timeout": "0.3",
    "webhook_circuit_failures": "3",
    "webhook_circuit_cooldown": "30s",
    "ops_department": "ops-centre",
}


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Iterator[Callable[..., None]]:
    """The service pointed at this test's database; call it to change webhook settings."""
    with ExitStack() as stack:

        def apply(**overrides: str) -> None:
            values = {**WEBHOOK_SETTINGS, **overrides}
            stack.enter_context(service_environment(pg_url, redis_url, **values))

        apply()
        yield apply


@pytest.fixture
def rules_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Put a rules folder in force for this test only."""
    monkeypatch.setattr(registry, "_default", registry._default)

    def use(folder: Path) -> None:
        registry.configure(folder)

    return use


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(datetime.now(UTC))
    previous = use_clock(frozen)
    try:
        yield frozen
    finally:
        use_clock(previous)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@dataclass
class Departments:
    """The endpoint lookup a test passes where the rules' `endpoint_for` is the default."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def add(self, department: str, url: str, *secrets: str) -> tuple[str, ...]:
        secrets = secrets or (new_secret(),)
        self.endpoints[department] = Endpoint(department=department, url=url, secrets=secrets)
        return secrets

    def __call__(self, department: str) -> Endpoint:
        return self.endpoints[department]


@pytest.fixture
def departments() -> Departments:
    return Departments()


def case_with_task(engine: Engine, department: str = "water") -> tuple[str, str]:
    """A filed case with one lead task for `department`; returns (case id, task id)."""
    case_id = filed_case(engine, reporter={"name": "王小明", "phone": "+86 138 0013 8000"})
    with transaction(engine) as session:
        task = Task(
            case_id=case_id,
            department=department,
            role="lead",
            state="assigned",
            acknowledge_due_at=datetime.now(UTC) + timedelta(hours=1),
            resolve_due_at=datetime.now(UTC) + timedelta(days=1),
        )
        session.add(task)
        session.flush()
        return case_id, task.id


def queue(
    engine: Engine,
    case_id: str,
    task_id: str | None,
    department: str = "water",
    *,
    event_type: str = "task.assigned",
    key: str | None = None,
    share_contact: bool = False,
) -> str:
    with transaction(engine) as session:
        case = session.get_one(Case, case_id)
        task = session.get(Task, task_id) if task_id else None
        return queue_delivery(
            session,
            case=case,
            task=task,
            department=department,
            event_type=event_type,
            payload=build_payload(case, task, share_contact=share_contact),
            dedupe_key=key or f"{event_type}:{task_id or case_id}:{department}",
        )


def drive(engine: Engine, departments: Departments) -> list[str]:
    """What beat and a worker do: queue the sends due, then run each one."""
    with transaction(engine) as session:
        due = queue_due(session)
    return [send_delivery(engine, delivery_id, endpoints=departments) for delivery_id in due]


def delivery(engine: Engine, delivery_id: str) -> Delivery:
    with session_factory(engine)() as session:
        found = session.get_one(Delivery, delivery_id)
        _ = found.attempt_log  # loaded for the caller, after the session closes
        return found


def actions(engine: Engine, case_id: str, prefix: str = "delivery.") -> list[str]:
    with session_factory(engine)() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.case_id == case_id, AuditEvent.action.startswith(prefix))
                .order_by(AuditEvent.seq)
            )
        )


def count(engine: Engine, model: type[object]) -> int:
    with session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)
