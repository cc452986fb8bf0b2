"""A flood: N incidents (default 10,000) in one burst over HTTP, on real PostgreSQL and Redis.

    .venv/bin/python -m bench.flood [--incidents 10000] [--clients 16]

Starts `closeloop api`, beat, a pipeline worker (incidents, pipeline, timers; prefork, 2) and
a webhook worker (threads, 8) on a scratch database, the example city's departments pointed
at a loopback receiver that verifies every signature. Files the incidents from --clients
threads as fast as the API answers, then waits until every case is dispatched and every
webhook delivered. Prints the errors (there must be none), how long acceptance took, and how
long until the last case was dispatched and the last webhook delivered.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.machine import describe
from bench.pipeline import scratch_database
from tests.faults.conftest import wait_until_complete
from tests.support.flood import flood
from tests.support.pipeline import pipeline
from worker.db.models import AuditEvent, Case
from worker.db.session import session_factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(describe())
    os.environ.setdefault("CLOSELOOP_LOG_LEVEL", "WARNING")
    with (
        scratch_database(args.server) as url,
        tempfile.TemporaryDirectory() as folder,
        pipeline(url, args.redis, Path(folder), log_level="WARNING", data_dir=folder) as p,
    ):
        p.start_worker("beat")
        p.start_worker("worker", "--queues", "incidents,pipeline,timers", "--concurrency", "2")
        p.start_worker("worker", "--queues", "webhooks", "--concurrency", "8", "--pool", "threads")
        api = p.start_api()
        headers = p.token("hotline")
        time.sleep(3)
        started = time.time()
        burst = flood(api, headers, args.incidents, clients=args.clients)
        wait_until_complete(p, burst.external_ids, timeout=7200)
        with session_factory(p.engine)() as session:
            last_dispatch = session.scalar(
                select(func.max(AuditEvent.at)).where(AuditEvent.action == "case.dispatched")
            )
            cases = session.scalar(select(func.count()).select_from(Case))
        last_webhook = max(r.at for r in p.receiver.all())
        webhooks = len(p.receiver.all())
    assert last_dispatch is not None
    print(f"\nflood of {args.incidents} incidents from {args.clients} HTTP clients")
    print(f"  answers                    {dict(burst.answers)}")
    print(f"  errors                     {len(burst.failures)}")
    rate = burst.accepted / burst.seconds
    print(f"  accepted in                {burst.seconds:8.1f} s   ({rate:.0f} incidents/s)")
    to_dispatch = last_dispatch.timestamp() - started
    print(
        f"  last case dispatched after {to_dispatch:8.1f} s   ({cases / to_dispatch:.0f} cases/s)"
    )
    to_webhook = last_webhook - started
    print(f"  last webhook received after{to_webhook:8.1f} s   ({webhooks} webhooks)")
    for failure in burst.failures[:5]:
        print(f"  e.g. {failure}")


if __name__ == "__main__":
    main()
