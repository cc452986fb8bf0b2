"""A department endpoint that fails half the time and sometimes hangs past the timeout:
every delivery still completes on the (shortened) retry schedule, one webhook-id each."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

import pytest

from tests.faults.conftest import assert_promise_kept, wait_until_complete
from tests.faults.test_worker_kills import WORKER
from tests.support.incidents import incident
from tests.support.pipeline import Pipeline
from worker.messaging.broker import publish_raw

INCIDENTS = 60


@pytest.mark.timeout(900)
def test_every_delivery_completes_against_a_flaky_endpoint(faulty: Pipeline) -> None:
    rng = random.Random(7)
    lock = threading.Lock()
    seen: Counter[str] = Counter()

    def flaky(webhook_id: str) -> tuple[int, float]:
        # Half the requests fail: every message's first attempt gets a 500, and one in four
        # hangs on its second past the sender's 2 s timeout. A message is answered by its
        # second or third attempt, well within the schedule's eight.
        with lock:
            seen[webhook_id] += 1
            attempt, roll = seen[webhook_id], rng.random()
        if attempt == 1:
            return 500, 0.0
        if attempt == 2 and roll < 0.25:
            return 204, 3.0
        return 204, 0.0

    faulty.receiver.behaviour = flaky
    faulty.start_worker("beat")
    faulty.start_worker(*WORKER, "--pool", "threads")
    incidents = [incident(n, rng) for n in range(INCIDENTS)]
    for body in incidents:
        publish_raw("incidents", json.dumps(body, ensure_ascii=False), str(body["external_id"]))
    external_ids = {str(body["external_id"]) for body in incidents}
    wait_until_complete(faulty, external_ids)
    assert_promise_kept(faulty, external_ids)
    requests = len(faulty.receiver.all())
    messages = len({r.webhook_id for r in faulty.receiver.all()})
    assert requests >= 2 * messages, "the endpoint was not flaky enough to prove anything"
