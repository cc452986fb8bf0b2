"""Deliveries against local HTTP receivers that misbehave the way real departments do.

Time is a clock the test moves; sending is driven the way beat and a worker drive it
(`queue_due`, then `send_delivery` for each), so nothing here waits on the wall clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, select

from tests.support.scripted_receiver import Receiver, Reply
from tests.support.statements import recorded
from tests.webhooks.conftest import (
    SUPERVISOR,
    Departments,
    actions,
    case_with_task,
    count,
    delivery,
    drive,
    queue,
)
from worker.clock import FrozenClock
from worker.db.models import Delivery, OutboxMessage, WebhookEndpoint
from worker.db.session import session_factory, transaction
from worker.tasks.names import SEND_WEBHOOK
from worker.webhooks import enable_endpoint, find_deliveries, replay_deliveries, send_delivery
from worker.webhooks.sending import Claim, claim_delivery, lease, post, record_answer

SECOND = timedelta(seconds=1)


def test_a_task_is_delivered_once_with_what_the_department_needs(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    [secret] = departments.add("water", receiver.url)
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)

    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "delivered"
    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "not due"
    clock.advance(timedelta(hours=1))
    assert drive(pg_engine, departments) == []

    [request] = receiver.received
    body = request.verify(secret)
    assert body["type"] == "task.assigned"
    assert body["data"]["task"]["id"] == task_id
    assert body["data"]["case"]["id"] == case_id
    assert body["data"]["deadlines"]["acknowledge_by"] is not None
    assert body["data"]["links"]["accept"] == f"http://127.0.0.1:8080/v1/tasks/{task_id}/accept"
    assert "contact" not in body["data"]
    assert "王小明" not in request.body.decode()
    done = delivery(pg_engine, delivery_id)
    assert (done.state, done.attempts, done.last_status) == ("delivered", 1, 200)
    assert [a.status_code for a in done.attempt_log] == [200]
    assert actions(pg_engine, case_id) == ["delivery.succeeded"]


def test_the_contact_goes_only_where_the_route_shares_it(
    settings: Callable[..., None], pg_engine: Engine, receiver: Receiver, departments: Departments
) -> None:
    [secret] = departments.add("water", receiver.url)
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id, share_contact=True)
    send_delivery(pg_engine, delivery_id, endpoints=departments)
    [request] = receiver.received
    assert request.verify(secret)["data"]["contact"] == [
        {"name": "王小明", "phone": "+86 138 0013 8000", "email": None}
    ]


def test_queueing_the_same_thing_twice_is_one_delivery_and_one_message(
    settings: Callable[..., None], pg_engine: Engine
) -> None:
    case_id, task_id = case_with_task(pg_engine)
    first = queue(pg_engine, case_id, task_id)
    again = queue(pg_engine, case_id, task_id)
    assert first == again
    assert count(pg_engine, Delivery) == 1
    with session_factory(pg_engine)() as session:
        messages = session.scalars(
            select(OutboxMessage).where(OutboxMessage.task_name == SEND_WEBHOOK)
        ).all()
    assert [m.payload for m in messages] == [{"delivery_id": first}]


def test_failure_timeout_and_429_then_delivered_with_one_webhook_id(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    settings(webhook_schedule="0s,1s,1s,1s,1s")
    [secret] = departments.add("water", receiver.url)
    receiver.script(
        Reply(500, body=b"database is down"),
        Reply(hang=5),  # past the 0.3 s timeout
        Reply(429, headers={"Retry-After": "120"}),
    )
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)

    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "retry"
    assert drive(pg_engine, departments) == []  # the next slot is a second away
    clock.advance(2 * SECOND)
    assert drive(pg_engine, departments) == ["retry"]  # the timeout
    clock.advance(2 * SECOND)
    assert drive(pg_engine, departments) == ["retry"]  # 429, Retry-After: 120
    clock.advance(2 * SECOND)
    assert drive(pg_engine, departments) == []  # the schedule says now; the endpoint said wait
    clock.advance(120 * SECOND)
    assert drive(pg_engine, departments) == ["delivered"]

    assert len(receiver.received) == 4
    assert len({r.webhook_id for r in receiver.received}) == 1
    for request in receiver.received:
        request.verify(secret)
    done = delivery(pg_engine, delivery_id)
    assert done.webhook_id == receiver.received[0].webhook_id
    log = [(a.attempt_no, a.status_code) for a in done.attempt_log]
    assert log == [(1, 500), (2, None), (3, 429), (4, 200)]
    assert "database is down" in (done.attempt_log[0].error or "")
    assert "timeout" in (done.attempt_log[1].error or "")
    assert actions(pg_engine, case_id) == ["delivery.failed"] * 3 + ["delivery.succeeded"]


def test_a_redirect_is_a_failure_and_is_not_followed(
    settings: Callable[..., None], pg_engine: Engine, receiver: Receiver, departments: Departments
) -> None:
    departments.add("water", receiver.url)
    receiver.script(Reply(302, headers={"Location": receiver.url + "/moved"}))
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "retry"
    assert [r.path for r in receiver.received] == ["/hooks"]
    failed = delivery(pg_engine, delivery_id)
    assert (failed.state, failed.last_status) == ("pending", 302)
    assert "redirect to " + receiver.url + "/moved" in (failed.last_error or "")


def test_410_disables_the_endpoint_and_tells_the_operations_centre(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    ops = Receiver()
    try:
        departments.add("water", receiver.url)
        [ops_secret] = departments.add("ops-centre", ops.url)
        receiver.script(Reply(410))
        case_id, task_id = case_with_task(pg_engine)
        gone_id = queue(pg_engine, case_id, task_id)

        assert send_delivery(pg_engine, gone_id, endpoints=departments) == "disabled"
        gone = delivery(pg_engine, gone_id)
        assert (gone.state, gone.last_status) == ("dead", 410)
        with session_factory(pg_engine)() as session:
            endpoint = session.get_one(WebhookEndpoint, "water")
            assert endpoint.disabled_at is not None
            assert endpoint.url == receiver.url

        assert drive(pg_engine, departments) == ["delivered"]  # the notice to ops
        [notice] = ops.received
        body = notice.verify(ops_secret)
        assert body["type"] == "endpoint.disabled"
        assert body["data"]["department"] == "water"
        assert body["data"]["url"] == receiver.url
        assert body["data"]["delivery_id"] == gone_id

        # Nothing more goes to a disabled endpoint: a new task for it is a dead letter at once.
        reminder = queue(pg_engine, case_id, task_id, event_type="task.reminder")
        assert send_delivery(pg_engine, reminder, endpoints=departments) == "dead"
        assert delivery(pg_engine, reminder).state == "dead"
        assert "endpoint disabled" in (delivery(pg_engine, reminder).last_error or "")
        assert len(receiver.received) == 1
        assert actions(pg_engine, case_id) == [
            "delivery.endpoint_disabled",
            "delivery.dead",
            "delivery.succeeded",
            "delivery.dead",
        ]

        # The department says it is back: enable, replay, delivered.
        with transaction(pg_engine) as session:
            assert enable_endpoint(session, "water")
            replay_deliveries(session, [gone_id, reminder], actor=SUPERVISOR)
        clock.advance(SECOND)
        assert sorted(drive(pg_engine, departments)) == ["delivered", "delivered"]
    finally:
        ops.close()


def test_exhausted_delivery_is_dead_and_replay_delivers_it_with_the_same_webhook_id(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    settings(webhook_circuit_failures="10")
    [secret] = departments.add("water", receiver.url)
    receiver.script(Reply(500), Reply(502), Reply(504))
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)

    outcomes = [send_delivery(pg_engine, delivery_id, endpoints=departments)]
    for _ in range(3):
        clock.advance(2 * SECOND)
        outcomes += drive(pg_engine, departments)
    assert outcomes == ["retry", "retry", "dead"]
    dead = delivery(pg_engine, delivery_id)
    assert (dead.state, dead.attempts, dead.next_attempt_at) == ("dead", 3, None)
    assert "gave up after 3 attempts" in (dead.last_error or "")
    with session_factory(pg_engine)() as session:
        assert [d.id for d in find_deliveries(session, state="dead")] == [delivery_id]

    with transaction(pg_engine) as session:
        report = replay_deliveries(session, [delivery_id, "no-such-id"], actor=SUPERVISOR)
    assert report.replayed == [delivery_id]
    assert report.skipped == {"no-such-id": "no such delivery"}
    assert drive(pg_engine, departments) == ["delivered"]

    assert len(receiver.received) == 4
    assert len({r.webhook_id for r in receiver.received}) == 1
    receiver.received[-1].verify(secret)
    done = delivery(pg_engine, delivery_id)
    assert [a.attempt_no for a in done.attempt_log] == [1, 2, 3, 4]
    assert actions(pg_engine, case_id) == [
        "delivery.failed",
        "delivery.failed",
        "delivery.failed",
        "delivery.dead",
        "delivery.replayed",
        "delivery.succeeded",
    ]
    with transaction(pg_engine) as session:
        again = replay_deliveries(session, [delivery_id], actor=SUPERVISOR)
        assert again.replayed == [delivery_id]  # an explicit replay may resend a delivered one
        in_flight = replay_deliveries(session, [delivery_id], actor=SUPERVISOR)
    assert "only a dead or delivered one" in in_flight.skipped[delivery_id]


def test_the_circuit_opens_after_failures_and_closes_after_a_good_probe(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    settings(webhook_schedule="0s,1s,1s,1s,1s")  # three failures open it, for 30 s
    departments.add("water", receiver.url)
    receiver.script(Reply(500), Reply(500), Reply(500))
    case_id, task_id = case_with_task(pg_engine)
    ids = [
        queue(pg_engine, case_id, task_id, event_type=kind)
        for kind in ("task.assigned", "task.reminder", "task.escalated", "task.reassigned")
    ]

    assert [send_delivery(pg_engine, i, endpoints=departments) for i in ids[:3]] == ["retry"] * 3
    assert send_delivery(pg_engine, ids[3], endpoints=departments) == "held"
    held = delivery(pg_engine, ids[3])
    assert (held.state, held.attempts) == ("pending", 0)
    with session_factory(pg_engine)() as session:
        endpoint = session.get_one(WebhookEndpoint, "water")
        assert endpoint.consecutive_failures == 3
        assert held.next_attempt_at == endpoint.circuit_open_until

    clock.advance(2 * SECOND)  # retries are due, the circuit is still open
    assert drive(pg_engine, departments) == ["held"] * 3
    assert len(receiver.received) == 3

    clock.advance(30 * SECOND)  # cool-down over: half-open, one probe at a time
    probe = claim_delivery(pg_engine, ids[0], departments)
    assert isinstance(probe, Claim)
    assert send_delivery(pg_engine, ids[1], endpoints=departments) == "held"
    assert len(receiver.received) == 3
    assert record_answer(pg_engine, probe, post(probe)) == "delivered"
    with session_factory(pg_engine)() as session:
        endpoint = session.get_one(WebhookEndpoint, "water")
        assert (endpoint.consecutive_failures, endpoint.circuit_open_until) == (0, None)

    assert sorted(drive(pg_engine, departments)) == ["delivered"] * 3
    assert {delivery(pg_engine, i).state for i in ids} == {"delivered"}
    assert delivery(pg_engine, ids[3]).attempts == 1  # holding it never counted as an attempt


def test_two_workers_never_send_the_same_attempt(
    settings: Callable[..., None], pg_engine: Engine, receiver: Receiver, departments: Departments
) -> None:
    settings(webhook_timeout="5")
    departments.add("water", receiver.url)
    receiver.script(Reply(hang=0.5))  # both workers are inside their attempt at once
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        start.wait()
        outcomes.append(send_delivery(pg_engine, delivery_id, endpoints=departments))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["delivered", "not due"]
    assert len(receiver.received) == 1
    assert delivery(pg_engine, delivery_id).attempts == 1


def test_a_worker_that_died_mid_send_leaves_the_delivery_due_after_its_lease(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    departments.add("water", receiver.url)
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    assert isinstance(claim_delivery(pg_engine, delivery_id, departments), Claim)  # then died

    assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "not due"
    assert drive(pg_engine, departments) == []
    clock.advance(lease() + SECOND)
    assert drive(pg_engine, departments) == ["delivered"]
    assert len(receiver.received) == 1
    done = delivery(pg_engine, delivery_id)
    assert [(a.attempt_no, a.status_code) for a in done.attempt_log] == [(1, None), (2, 200)]
    assert "worker stopped mid-send" in (done.attempt_log[0].error or "")


def test_an_outcome_recorded_after_the_lease_ran_out_does_not_overwrite_the_next_attempt(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    departments.add("water", receiver.url)
    receiver.script(Reply(200), Reply(500))  # the worker that took over, then the slow one
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    slow = claim_delivery(pg_engine, delivery_id, departments)
    assert isinstance(slow, Claim)
    clock.advance(lease() + SECOND)
    assert drive(pg_engine, departments) == ["delivered"]  # another worker took over
    assert record_answer(pg_engine, slow, post(slow)) == "superseded"  # the slow one's 500
    done = delivery(pg_engine, delivery_id)
    assert (done.state, done.last_status) == ("delivered", 200)


def test_recording_an_outcome_starts_from_the_claimed_row_instead_of_reading_it_again(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    departments.add("water", receiver.url)
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)
    with recorded(pg_engine) as statements:
        assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "delivered"
    reads = [statement for statement in statements if statement.startswith("SELECT deliveries.")]
    assert len(reads) == 1  # the claim's
    done = delivery(pg_engine, delivery_id)
    assert (done.state, done.attempts, done.last_status) == ("delivered", 1, 200)
    assert actions(pg_engine, case_id) == ["delivery.succeeded"]


def test_a_delivered_attempt_is_these_statements_and_no_more(
    settings: Callable[..., None],
    pg_engine: Engine,
    receiver: Receiver,
    departments: Departments,
    clock: FrozenClock,
) -> None:
    """What one good attempt costs the database: nine statements in two transactions, none
    of them a read of the whole case row, and no write to an endpoint whose health did not
    change. (An attempt is the webhook worker's whole job; a stray ORM load here shows.)"""
    departments.add("water", receiver.url)
    for _ in range(2):  # the first attempt to an endpoint makes its row; look at the second
        case_id, task_id = case_with_task(pg_engine)
        delivery_id = queue(pg_engine, case_id, task_id)
        with recorded(pg_engine) as statements:
            assert send_delivery(pg_engine, delivery_id, endpoints=departments) == "delivered"
    assert [" ".join(s.split()[:3]) for s in statements] == [
        # the claim
        "SELECT deliveries.id, deliveries.webhook_id,",
        "SELECT webhook_endpoints.department, webhook_endpoints.url,",
        "UPDATE deliveries SET",
        # the outcome
        "INSERT INTO delivery_attempts",
        "SELECT webhook_endpoints.department, webhook_endpoints.url,",
        "UPDATE deliveries SET",
        "SELECT cases.version, cases.audit_seq,",
        "UPDATE cases SET",
        "INSERT INTO audit_events",
    ]
    assert all("FOR UPDATE" in s for s in statements if s.startswith("SELECT webhook_endpoints"))
