"""Each stage's message delivered twice, and a worker killed between a stage's commit and the
broker's acknowledgement: the case still ends with exactly one task per department and one
delivery each, and every department hears of its task under one webhook-id."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from worker.db.models import Case, Delivery, Task
from worker.db.session import session_factory
from worker.messaging.broker import publish_raw
from worker.tasks.app import app
from worker.tasks.names import DISPATCH, MONITOR, SEND_WEBHOOK

GAS_LEAK = {
    "source": "hotline",
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "location": {"district": "gulou"},
}


@pytest.fixture
def wired(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(pg_url, redis_url, tmp_path) as p:
        yield p


def _file(p: Pipeline) -> str:
    external_id = str(uuid.uuid4())
    publish_raw("incidents", json.dumps({**GAS_LEAK, "external_id": external_id}), external_id)

    def case_id() -> str | None:
        with session_factory(p.engine)() as session:
            return session.scalar(select(Case.id).where(Case.external_id == external_id))

    wait_for(
        lambda: case_id() is not None, timeout=60, what=lambda: "the case\n" + p.logs()[-3000:]
    )
    found = case_id()
    assert found is not None
    return found


def _wait_dispatched_and_delivered(p: Pipeline) -> None:
    def delivered() -> bool:
        with session_factory(p.engine)() as session:
            states = session.scalars(select(Delivery.state)).all()
        return len(states) == 2 and set(states) == {"delivered"}

    wait_for(delivered, timeout=60, what=lambda: "both deliveries\n" + p.logs()[-4000:])


def _assert_exactly_once(p: Pipeline, case_id: str) -> None:
    with session_factory(p.engine)() as session:
        tasks = Counter(session.scalars(select(Task.department).where(Task.case_id == case_id)))
        deliveries = Counter(
            session.scalars(select(Delivery.department).where(Delivery.case_id == case_id))
        )
    assert tasks == {"gas": 1, "fire": 1}
    assert deliveries == {"gas": 1, "fire": 1}
    ids_by_department: dict[str, set[str]] = {}
    for received in p.receiver.all():
        ids_by_department.setdefault(received.department, set()).add(received.webhook_id)
        assert received.verified
    assert {d: len(ids) for d, ids in ids_by_department.items()} == {"gas": 1, "fire": 1}


def test_every_stage_message_delivered_twice(wired: Pipeline) -> None:
    wired.start_worker()
    case_id = _file(wired)
    _wait_dispatched_and_delivered(wired)
    with session_factory(wired.engine)() as session:
        delivery_ids = session.scalars(select(Delivery.id)).all()
    for name, kwargs in [
        (MONITOR, {"case_id": case_id}),
        (DISPATCH, {"case_id": case_id}),
        *[(SEND_WEBHOOK, {"delivery_id": d}) for d in delivery_ids],
    ]:
        app.send_task(name, kwargs=kwargs)
    wired.wait_idle()
    _assert_exactly_once(wired, case_id)


@pytest.mark.parametrize(
    "stage", [MONITOR, "pipeline:triaged", "pipeline:dispatched", DISPATCH, SEND_WEBHOOK]
)
def test_worker_killed_between_commit_and_ack(wired: Pipeline, stage: str, tmp_path: Path) -> None:
    """Each stage's commit, then death before the acknowledgement. The monitor task dispatches
    the case itself, in a second transaction: killed between the two, the held dispatch
    message is the relay's (beat) to send."""
    marker = tmp_path / "crashed"
    wired.start_worker("beat")
    wired.start_worker(
        stage, str(marker),
        "--queues", "incidents,pipeline,webhooks,timers", "--concurrency", "2", "--pool", "prefork",
        module="tests.support.crashing_worker",
    )  # fmt: skip
    case_id = _file(wired)
    _wait_dispatched_and_delivered(wired)
    assert marker.exists(), "the worker never crashed: the test proved nothing"
    _assert_exactly_once(wired, case_id)


@pytest.fixture
def quick_intake(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(pg_url, redis_url, tmp_path, intake_heartbeat_timeout="2") as p:
        yield p


@pytest.mark.parametrize("moment", ["intake:taken", "intake:filed"])
def test_intake_worker_killed_holding_a_queued_incident(
    quick_intake: Pipeline, moment: str, tmp_path: Path
) -> None:
    """The moment kombu's own Redis consumer would lose the message (taken off the queue, not
    yet recorded anywhere), and the moment after its case is committed: either way the next
    worker files it, once."""
    marker = tmp_path / "crashed"
    crashing = quick_intake.start_worker(
        moment, str(marker), module="tests.support.crashing_worker"
    )
    message_id = str(uuid.uuid4())
    publish_raw("incidents", json.dumps(GAS_LEAK, ensure_ascii=False), message_id)
    wait_for(lambda: crashing.poll() is not None, timeout=60, what="the worker to crash")
    assert marker.exists(), "the worker never crashed: the test proved nothing"
    quick_intake.start_worker()
    _wait_dispatched_and_delivered(quick_intake)
    with session_factory(quick_intake.engine)() as session:
        cases = session.scalars(select(Case.id)).all()
    assert len(cases) == 1
    _assert_exactly_once(quick_intake, cases[0])
