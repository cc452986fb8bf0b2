"""The broker connection, by URL: production Redis, or the embedded one."""

from __future__ import annotations

import kombu
import redis

from worker.config import get_settings


def broker_url() -> str:
    url = get_settings().broker_url
    if not url:
        raise RuntimeError(
            "CLOSELOOP_BROKER_URL is not set; `closeloop up` sets it to its embedded Redis"
        )
    return url


def ping_broker(timeout: float = 2.0) -> None:
    with kombu.Connection(broker_url(), connect_timeout=timeout) as connection:  # type: ignore[attr-defined]
        connection.ensure_connection(max_retries=1, timeout=timeout)


def redis_client() -> redis.Redis:
    """A plain Redis client on the broker, for closeloop's own small bookkeeping keys."""
    return redis.Redis.from_url(broker_url(), socket_timeout=5, socket_connect_timeout=5)


def key(name: str) -> str:
    """A bookkeeping key, under the same prefix as the queues."""
    return f"{get_settings().broker_key_prefix}closeloop:{name}"
