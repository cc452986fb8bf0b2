"""One department's endpoint trickles its answer, a byte every 0.3 s for three times the
webhook timeout, beside healthy ones, with real worker and beat processes shaped as
`closeloop run` starts them. Its attempts are cut at the timeout and recorded as timeouts
(each byte on its own is quick: a per-read timeout would wait for all of them), every other
department's webhooks arrive within moments, and once it answers normally every delivery
completes, one webhook-id each."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from tests.faults.conftest import FAULT_SETTINGS, assert_promise_kept, wait_until_complete
from tests.support.incidents import incident
from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from tests.support.trickle import WHERE, Trickle
from worker.db.models import Case, Delivery
from worker.db.session import session_factory
from worker.messaging.broker import publish_raw

INCIDENTS = 40
TRICKLING = "water"
TIMEOUT = float(FAULT_SETTINGS["webhook_timeout"])
# Each byte within a fraction of the timeout; the whole answer three times past it.
TRICKLE_EVERY, TRICKLE_LASTS = 0.3, 3 * TIMEOUT
# From a healthy department's delivery being written to its webhook arriving: a tenth of a
# second here; had the trickling endpoint taken every webhook thread, nearly the timeout.
HEALTHY_WITHIN = TIMEOUT / 2
# An attempt cut at the deadline took about the timeout: the rest is recording it.
CUT_WITHIN_MS = (TIMEOUT + 1.5) * 1000


@pytest.fixture
def trickling(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    # At most two of the webhook worker's four threads on one endpoint, so that a slow
    # department leaves the others two threads whatever it does.
    settings = {**FAULT_SETTINGS, "webhook_endpoint_concurrency": "2"}
    with pipeline(pg_url, redis_url, tmp_path, data_dir=str(tmp_path), **settings) as p:
        yield p


def _at(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@pytest.mark.timeout(240)
def test_a_trickling_department_delays_no_other_and_every_delivery_completes(
    trickling: Pipeline,
) -> None:
    p = trickling
    rng = random.Random(16)
    lock = threading.Lock()
    seen: Counter[str] = Counter()
    trickled: list[tuple[str, str, float]] = []  # webhook-id, where, when it started

    def trickles(webhook_id: str) -> tuple[int, float | Trickle]:
        # Every webhook's first attempt trickles (the status line, the headers or an error's
        # body, in turn); its retry is answered at once.
        with lock:
            seen[webhook_id] += 1
            if seen[webhook_id] > 1:
                return 204, 0.0
            where = WHERE[len(trickled) % len(WHERE)]
            trickled.append((webhook_id, where, time.time()))
        return 204, Trickle(where, TRICKLE_EVERY, TRICKLE_LASTS)

    p.receiver.behaviour_of[TRICKLING] = trickles
    p.start_worker("beat")
    p.start_worker("worker", "--queues", "incidents,pipeline,timers", "--concurrency", "2")
    p.start_worker("worker", "--queues", "webhooks", "--concurrency", "4", "--pool", "threads")

    # One healthy department's case first, so that the timings below start with warm workers.
    warm_up = {**incident(INCIDENTS, rng), "category": "roads.pothole"}
    incidents = [incident(n, rng) for n in range(INCIDENTS)]
    for body in [warm_up, *incidents]:
        publish_raw("incidents", json.dumps(body, ensure_ascii=False), str(body["external_id"]))
        if body is warm_up:
            wait_for(lambda: bool(p.receiver.all()), timeout=90, what=lambda: p.logs()[-3000:])
    external_ids = {str(body["external_id"]) for body in [warm_up, *incidents]}
    wait_until_complete(p, external_ids, timeout=150)
    assert_promise_kept(p, external_ids)

    with session_factory(p.engine)() as session:
        deliveries = session.scalars(
            select(Delivery).options(selectinload(Delivery.attempt_log))
        ).all()
        slow = [d for d in deliveries if d.department == TRICKLING]
        # The warm-up's wait was the workers starting: not what this measures.
        warm = session.scalar(select(Case.id).where(Case.external_id == warm_up["external_id"]))
        healthy = [d for d in deliveries if d.department != TRICKLING and d.case_id != warm]
        assert len(slow) >= len(WHERE), "too few cases for the trickling department"
        assert {where for _, where, _ in trickled} == set(WHERE)
        assert sorted(webhook_id for webhook_id, _, _ in trickled) == sorted(
            d.webhook_id for d in slow
        )

        for delivery in slow:
            first, *rest = sorted(delivery.attempt_log, key=lambda a: a.attempt_no)
            assert first.error == f"no answer within {TIMEOUT:g} s (timeout)", (
                f"{delivery.webhook_id}: a trickled answer was taken as {first.status_code} "
                f"after {first.duration_ms} ms"
            )
            assert first.duration_ms is not None
            assert TIMEOUT * 1000 * 0.9 <= first.duration_ms < CUT_WITHIN_MS
            assert delivery.state == "delivered"
            assert [a.status_code for a in rest] == [204]

        first_arrival: dict[str, float] = {}
        for received in sorted(p.receiver.all(), key=lambda r: r.at):
            first_arrival.setdefault(received.webhook_id, received.at)
        waits: dict[str, float] = {}
        for delivery in healthy:
            assert delivery.state == "delivered"
            assert [a.status_code for a in delivery.attempt_log] == [204]
            waited = first_arrival[delivery.webhook_id] - _at(delivery.created_at)
            waits[delivery.department] = max(waits.get(delivery.department, 0.0), waited)
        assert max(waits.values()) < HEALTHY_WITHIN, f"healthy departments waited {waits}"

    # The healthy departments were served while the trickling one was being answered.
    starts = [at for _, _, at in trickled]
    meanwhile = [
        r
        for r in p.receiver.all()
        if r.department != TRICKLING and min(starts) <= r.at <= max(starts) + TIMEOUT
    ]
    assert meanwhile, "no healthy webhook arrived while the endpoint trickled"
