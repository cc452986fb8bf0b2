"""A flood of incidents in one burst over HTTP: every one accepted without error, and the
pipeline drains them all to routed cases with their webhooks delivered.

CLOSELOOP_FLOOD_INCIDENTS sets the size (default 1,000 to keep CI short);
`python -m bench.flood` runs the 10,000 of the issue and reports the times."""

from __future__ import annotations

import os
import time

import pytest

from tests.faults.conftest import assert_promise_kept, wait_until_complete
from tests.support.flood import flood
from tests.support.pipeline import Pipeline

INCIDENTS = int(os.environ.get("CLOSELOOP_FLOOD_INCIDENTS", "1000"))


@pytest.mark.timeout(1800)
def test_a_burst_is_accepted_without_error_and_drained(faulty: Pipeline) -> None:
    faulty.start_worker("beat")
    faulty.start_worker("worker", "--queues", "incidents,pipeline,timers", "--concurrency", "2")
    faulty.start_worker("worker", "--queues", "webhooks", "--concurrency", "8", "--pool", "threads")
    api = faulty.start_api()
    started = time.perf_counter()
    burst = flood(api, faulty.token("hotline"), INCIDENTS)
    assert burst.failures == [], burst.failures[:5]
    assert burst.accepted == INCIDENTS
    wait_until_complete(faulty, burst.external_ids, timeout=1500)
    drained = time.perf_counter() - started
    assert_promise_kept(faulty, burst.external_ids)
    print(
        f"\n{INCIDENTS} incidents accepted in {burst.seconds:.1f} s "
        f"({INCIDENTS / burst.seconds:.0f}/s), drained in {drained:.1f} s"
    )
