"""kombu's Redis transport, with two changes.

A channel reuses its client for the commands it runs outside the event loop (publish, ack,
the unacked index) instead of building a new `redis.Redis` for each one.

A `redis.Redis` is only a handle on a connection pool, and safe to share between threads;
but building one costs redis-py 8 about 0.3 ms of CPU (it fills a table of response
callbacks), and kombu builds one for every publish and two for every task it consumes.
The client is built again whenever the channel replaces its pool (after a lost
connection), so it never outlives the pool it points at.

A channel remembers how to reach Redis. When Redis goes away, kombu's `Connection.collect`
closes the transport's channels and then detaches the transport (`transport.client = None`);
a channel whose close failed midway (Redis still down) is closed again later, and closing
puts its unacknowledged messages back (`restore_unacked`), which builds a new pool from the
kombu Connection's URL, now gone: `AttributeError: 'NoneType' object has no attribute
'hostname'`. That is not one of the connection errors Celery expects while reconnecting,
and it stopped the worker. With the parameters remembered, the late close puts the messages
back on a restarted Redis, or fails with a connection error that Celery does expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu.transport import base as kombu_base
from kombu.transport import redis as kombu_redis

from worker.config import get_settings

#: The `broker_transport` setting that selects this transport (redis:// and rediss:// URLs).
TRANSPORT = "worker.messaging.broker_transport:Transport"


class Channel(kombu_redis.Channel):
    _reused: tuple[Any, Any] | None = None
    # How to reach Redis, kept from while the channel had its connection: {asynchronous: params}
    _remembered: dict[bool, dict[str, Any]] | None = None

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is not None and getattr(transport, "client", None) is not None:
            if self._remembered is None:
                self._remembered = {
                    kind: dict(super(Channel, self)._connparams(asynchronous=kind))  # type: ignore[no-untyped-call]
                    for kind in (False, True)
                }
            return dict(self._remembered[asynchronous])
        if self._remembered is None:
            raise redis.ConnectionError("the broker connection was closed before it was used")
        return dict(self._remembered[asynchronous])

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        reused = self._reused
        if reused is None or reused[0] is not pool:
            reused = self._reused = (pool, self._create_client())  # type: ignore[no-untyped-call]
        yield reused[1]


class Transport(kombu_redis.Transport):
    Channel = Channel


class BrokerNotConfigured(RuntimeError):
    def __init__(self) -> None:
        data_dir = get_settings().data_dir.resolve()
        super().__init__(
            f"no broker: no `closeloop up` is running on {data_dir}, and CLOSELOOP_BROKER_URL "
            "is not set. Run this where `closeloop up` runs, or say where its data folder is "
            "with --data-dir (or CLOSELOOP_DATA_DIR), or set CLOSELOOP_BROKER_URL"
        )


class Unconfigured(kombu_base.Transport):
    """What Celery is given when no broker is set: every attempt to connect fails, saying
    what to set. Left to itself, Celery would fall back to amqp://guest@localhost//, and a
    message sent there waits in a queue nobody reads."""

    driver_type = driver_name = "unconfigured"

    def establish_connection(self) -> Any:
        raise BrokerNotConfigured()


#: The `broker_url` and `broker_transport` Celery is given when no broker is set.
UNCONFIGURED_URL = "unconfigured://"
UNCONFIGURED_TRANSPORT = "worker.messaging.broker_transport:Unconfigured"
