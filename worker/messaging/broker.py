"""The broker connection, by URL: production Redis, or the embedded one."""

from __future__ import annotations

import os
from functools import lru_cache

import kombu
import redis

from worker.config import get_settings
from worker.messaging.broker_transport import BrokerNotConfigured


def broker_url() -> str:
    url = get_settings().broker_url
    if not url:
        raise BrokerNotConfigured()
    return url


def ping_broker(timeout: float = 2.0) -> None:
    with kombu.Connection(broker_url(), connect_timeout=timeout) as connection:  # type: ignore[attr-defined]
        connection.ensure_connection(max_retries=1, timeout=timeout)


def redis_client() -> redis.Redis:
    """A plain Redis client on the broker, for closeloop's own small bookkeeping keys.

    One per process and URL (it holds a connection pool); a new one per call would open a
    connection for every task."""
    return _client_for(broker_url(), os.getpid())


@lru_cache(maxsize=4)
def _client_for(url: str, pid: int) -> redis.Redis:
    # The pid is part of the key: a forked pool process must not share its parent's sockets.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def key(name: str) -> str:
    """A bookkeeping key, under the same prefix as the queues."""
    return f"{get_settings().broker_key_prefix}closeloop:{name}"


def claim_once(names: list[str], seconds: int, kind: str) -> set[str]:
    """Of `names`, those not claimed (for `kind`) within the last `seconds`; claims them.
    If Redis has restarted and forgotten, everything is claimable again, which is right:
    what it held may be gone too."""
    client = redis_client()
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.set(key(f"{kind}:{name}"), "1", nx=True, ex=max(1, seconds))
        answers = pipe.execute()
    return {name for name, claimed in zip(names, answers, strict=True) if claimed}


def publish_raw(
    queue: str, body: str | bytes, message_id: str, content_type: str = "application/json"
) -> None:
    """Publish a plain message (not a Celery task) to `queue`, persistent, with a message id."""
    from kombu.entity import Queue
    from kombu.messaging import Producer

    from worker.tasks.app import app

    with app.connection_for_write() as connection:
        producer = Producer(connection)
        producer.publish(
            body,
            routing_key=queue,
            declare=[Queue(queue)],
            content_type=content_type,
            content_encoding="utf-8",
            message_id=message_id,
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        )
