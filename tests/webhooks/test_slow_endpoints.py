"""`CLOSELOOP_WEBHOOK_TIMEOUT` bounds the whole attempt, and one department's slow endpoint
holds at most `CLOSELOOP_WEBHOOK_ENDPOINT_CONCURRENCY` of a worker's threads: against a real
endpoint on loopback that answers a byte at a time, beside a healthy one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from tests.support.scripted_receiver import Receiver
from tests.support.trickle import TrickleServer
from tests.webhooks.conftest import Departments, case_with_task, delivery, queue
from worker.webhooks import send_delivery


@pytest.fixture
def trickle(request: pytest.FixtureRequest) -> Iterator[TrickleServer]:
    server = TrickleServer(where=getattr(request, "param", "headers"), every=0.3, lasts=8.0)
    yield server
    server.close()


@pytest.mark.parametrize("trickle", ["status line", "headers", "error body"], indirect=True)
def test_an_endpoint_that_trickles_is_cut_off_at_the_timeout(
    settings: Callable[..., None],
    pg_engine: Engine,
    trickle: TrickleServer,
    departments: Departments,
) -> None:
    settings(webhook_timeout="1")
    departments.add("water", trickle.url)
    case_id, task_id = case_with_task(pg_engine)
    delivery_id = queue(pg_engine, case_id, task_id)

    started = time.monotonic()
    outcome = send_delivery(pg_engine, delivery_id, endpoints=departments)
    took = time.monotonic() - started

    assert outcome == "retry"
    assert took < 2.5, f"the attempt took {took:.1f} s against a 1 s timeout"
    failed = delivery(pg_engine, delivery_id)
    assert (failed.state, failed.attempts) == ("pending", 1)
    [attempt] = failed.attempt_log
    assert attempt.error == "no answer within 1 s (timeout)"
    assert attempt.duration_ms is not None
    assert attempt.duration_ms < 2500


def test_a_slow_endpoint_holds_only_its_share_of_the_threads(
    settings: Callable[..., None],
    pg_engine: Engine,
    trickle: TrickleServer,
    receiver: Receiver,
    departments: Departments,
) -> None:
    settings(webhook_timeout="2", webhook_endpoint_concurrency="2")
    departments.add("gas", trickle.url)
    departments.add("water", receiver.url)
    slow = [queue(pg_engine, *case_with_task(pg_engine, "gas"), "gas") for _ in range(4)]
    healthy = queue(pg_engine, *case_with_task(pg_engine, "water"))

    # A webhook worker's four threads, and its queue: four sends to the slow department
    # first, then one to a healthy department.
    with ThreadPoolExecutor(max_workers=4) as threads:
        started = time.monotonic()
        sends = [threads.submit(send_delivery, pg_engine, i, endpoints=departments) for i in slow]
        sent = threads.submit(send_delivery, pg_engine, healthy, endpoints=departments)
        assert sent.result(timeout=10) == "delivered"
        waited = time.monotonic() - started
        outcomes = sorted(send.result(timeout=10) for send in sends)

    assert waited < 1.5, f"the healthy department waited {waited:.1f} s for a thread"
    assert [r.webhook_id for r in receiver.received] == [delivery(pg_engine, healthy).webhook_id]
    assert outcomes == ["busy", "busy", "retry", "retry"]
    assert trickle.requests == 2
    for delivery_id in slow:
        put_back = delivery(pg_engine, delivery_id)
        assert put_back.state == "pending"
        if not put_back.attempt_log:  # over the bound: back shortly, not an attempt
            assert put_back.attempts == 0
            assert put_back.next_attempt_at is not None
            assert put_back.next_attempt_at <= datetime.now(UTC)
