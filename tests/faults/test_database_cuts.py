"""PostgreSQL connections cut again and again while incidents are filed over HTTP and flow:
tasks retry, clients retry with their Idempotency-Key, nothing is lost or half-written."""

from __future__ import annotations

import random
import threading
import time
import uuid

import httpx
import pytest
from sqlalchemy import make_url, text

from tests.faults.conftest import assert_promise_kept, wait_until_complete
from tests.faults.test_worker_kills import WORKER
from tests.support.incidents import incident
from tests.support.pipeline import Pipeline
from worker.db.session import make_engine

INCIDENTS = 300


def file_with_retries(api: str, headers: dict[str, str], body: dict[str, object]) -> None:
    """What a careful client does: the same Idempotency-Key until it gets its 202."""
    key = str(uuid.uuid4())
    for _ in range(60):
        try:
            answer = httpx.post(
                f"{api}/v1/incidents",
                json=body,
                headers={**headers, "Idempotency-Key": key},
                timeout=10,
            )
            if answer.status_code == 202:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"incident {body['external_id']} never accepted")


def cut_connections(pg_url: str, stop: threading.Event, rng: random.Random) -> int:
    database = make_url(pg_url).database
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    cuts = 0
    try:
        while not stop.wait(rng.uniform(0.3, 1.2)):
            with admin.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                )
            cuts += 1
    finally:
        admin.dispose()
    return cuts


@pytest.mark.timeout(900)
def test_connections_cut_while_incidents_flow(faulty: Pipeline, pg_url: str) -> None:
    rng = random.Random(11)
    faulty.start_worker("beat")
    faulty.start_worker(*WORKER, "--pool", "threads")
    api = faulty.start_api()
    headers = faulty.token("hotline")
    stop = threading.Event()
    cuts: list[int] = []
    cutter = threading.Thread(target=lambda: cuts.append(cut_connections(pg_url, stop, rng)))
    cutter.start()
    incidents = [incident(n, rng) for n in range(INCIDENTS)]
    try:
        for body in incidents:
            file_with_retries(api, headers, body)
    finally:
        stop.set()
        cutter.join(timeout=30)
    assert cuts, "the cutter never finished"
    assert cuts[0] >= 5, "the connections were hardly cut: the test proved nothing"
    external_ids = {str(body["external_id"]) for body in incidents}
    wait_until_complete(faulty, external_ids)
    assert_promise_kept(faulty, external_ids)
