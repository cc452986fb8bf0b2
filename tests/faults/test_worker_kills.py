"""2,000 incidents filed while the worker is killed with SIGKILL at random moments."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from tests.faults.conftest import INCIDENTS, assert_promise_kept, wait_until_complete
from tests.support import processes
from tests.support.incidents import incident
from tests.support.pipeline import Pipeline
from worker.messaging.broker import publish_raw

WORKER = ["worker", "--queues", "incidents,pipeline,webhooks,timers", "--concurrency", "3"]


@pytest.mark.timeout(900)
def test_sigkill_the_worker_five_times_while_incidents_pour_in(faulty: Pipeline) -> None:
    rng = random.Random(20261124)
    incidents = [incident(n, rng) for n in range(INCIDENTS)]
    faulty.start_worker("beat")
    worker = faulty.start_worker(*WORKER, "--pool", "prefork")

    def file_all() -> None:
        for body in incidents:
            publish_raw("incidents", json.dumps(body, ensure_ascii=False), str(body["external_id"]))
            time.sleep(0.005)

    filer = threading.Thread(target=file_all)
    filer.start()
    for _ in range(5):
        time.sleep(rng.uniform(2.0, 6.0))
        processes.kill(worker)
        faulty.workers.remove(worker)
        worker = faulty.start_worker(*WORKER, "--pool", "prefork")
    filer.join(timeout=120)
    assert not filer.is_alive()
    external_ids = {str(body["external_id"]) for body in incidents}
    wait_until_complete(faulty, external_ids)
    assert_promise_kept(faulty, external_ids)
