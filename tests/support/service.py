"""Point the whole service (settings, engine, Celery) at a test's database and broker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from worker.config import reset_settings_cache
from worker.db.session import engine_for
from worker.tasks.app import configure

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def service_environment(
    database_url: str, broker_url: str, **extra: str
) -> Iterator[dict[str, str]]:
    """Set CLOSELOOP_* for this process (and children it starts), with a broker key prefix
    of its own so that parallel test runs on one Redis never take each other's messages."""
    values = {
        "CLOSELOOP_DATABASE_URL": database_url,
        "CLOSELOOP_BROKER_URL": broker_url,
        "CLOSELOOP_BROKER_KEY_PREFIX": f"t{uuid.uuid4().hex[:10]}:",
        "CLOSELOOP_RULES_DIR": str(ROOT / "routing_rules"),
        "CLOSELOOP_LOG_FORMAT": "json",
        **{f"CLOSELOOP_{k.upper()}": v for k, v in extra.items()},
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    _reload()
    try:
        yield values
    finally:
        _forget_keys(broker_url, values["CLOSELOOP_BROKER_KEY_PREFIX"])
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _reload()


def _reload() -> None:
    reset_settings_cache()
    engine_for.cache_clear()
    configure()


def _forget_keys(broker_url: str, prefix: str) -> None:
    """Leave the shared Redis as we found it: drop every key under this test's prefix."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
