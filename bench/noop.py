"""The baseline for bench/pipeline.py: an empty task on closeloop's own Celery app, broker,
queue and pool. `python -m celery -A bench.noop worker -Q pipeline ...` runs it."""

from __future__ import annotations

import time

import redis

from worker.config import get_settings
from worker.messaging.broker import key
from worker.tasks.app import app, configure

configure()
NOOP = "closeloop.pipeline.bench_noop"


@app.task(name=NOOP)
def noop(chain_id: str | None = None, last: bool = False) -> str | None:
    """Does nothing; the last link of a timed chain notes when it ran."""
    if last and chain_id:
        client = redis.Redis.from_url(get_settings().broker_url or "")
        client.hset(key("bench:chains"), chain_id, time.time())
        client.close()
    return chain_id
