"""A small test session that `tests/test_no_process_left.py` runs as a subprocess: it starts
what a full run starts (embedded PostgreSQL and Redis, a prefork and a threads worker, the
API) and ends as a full run ends. With CLOSELOOP_PROBE_LEAK=1 one test leaks a process on
purpose, to show that the session notices, names it and kills it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from tests.support.pipeline import pipeline
from tests.support.processes import wait_for
from worker.messaging.broker import publish_raw

KEPT: list[redis.Redis] = []  # clients a session holds until it ends, as pools do


def test_servers_workers_and_the_api_run(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    with pipeline(pg_url, redis_url, tmp_path) as running:
        running.start_worker()  # threads
        running.start_worker("worker", "--queues", "timers", "--concurrency", "2")  # prefork
        running.start_api()
        wait_for(
            lambda: running.logs().count("ready.") >= 2,
            timeout=60,
            what=lambda: "both workers ready\n" + running.logs()[-3000:],
        )
        # What a full run's tests do: publish through the broker's pooled connections,
        # which stay open in this process until it exits.
        publish_raw("incidents", "{}", str(uuid.uuid4()))
    KEPT.append(redis.Redis.from_url(redis_url))
    assert KEPT[-1].ping()


def test_a_leak_if_asked() -> None:
    if os.environ.get("CLOSELOOP_PROBE_LEAK") == "1":
        subprocess.Popen(  # left running on purpose
            [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
        )
