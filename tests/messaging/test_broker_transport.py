"""The Redis transport shares one client per channel, and drops it with its pool."""

from __future__ import annotations

import pytest

from worker.messaging.broker_transport import TRANSPORT, UNCONFIGURED_TRANSPORT, Channel, Transport
from worker.tasks.app import _transport_for, app


def test_redis_urls_take_the_sharing_transport_and_others_keep_their_own() -> None:
    assert _transport_for("redis://127.0.0.1:6379/0") == TRANSPORT
    assert _transport_for("rediss://cache.example:6380/0") == TRANSPORT
    assert _transport_for("amqp://guest@localhost//") is None
    # No broker set: a transport that refuses to connect, never Celery's amqp default.
    assert _transport_for(None) == UNCONFIGURED_TRANSPORT


@pytest.mark.usefixtures("service")
def test_a_channel_reuses_its_client_until_its_pool_is_replaced() -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(connection.transport, Transport)
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.connection_pool is channel.pool
        given = object()
        with channel.conn_or_acquire(given) as passed:
            assert passed is given
        channel._pool = None  # what kombu does after a lost connection
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool


@pytest.mark.usefixtures("service")
def test_messages_still_go_round_trip_through_the_shared_client() -> None:
    from kombu import Queue

    queue_name = "transport-check"
    with app.connection_for_write() as connection:
        queue = Queue(queue_name, channel=connection.default_channel)
        queue.declare()
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, routing_key=queue_name, serializer="json")
        seen = []
        for _ in range(3):
            message = queue.get(no_ack=False)
            assert message is not None
            seen.append(message.payload["n"])
            message.ack()
        assert sorted(seen) == [0, 1, 2]
        assert queue.get() is None
        queue.delete()


@pytest.mark.usefixtures("service")
def test_a_channel_closed_after_its_connection_let_go_puts_its_messages_back() -> None:
    """What kombu leaves after Redis went away mid-task: `Connection.collect` detached the
    transport (its `client` is None) with a channel still open, holding an unacknowledged
    message. Closing that channel later put the message back through a new pool built from
    the detached URL: `AttributeError: 'NoneType' object has no attribute 'hostname'`, which
    stopped the worker. It must put the message back instead."""
    queue_name = "transport-late-close"
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue(queue_name)
        queue.put({"n": 1})
        taken = queue.get(timeout=5)  # taken, not acknowledged: its worker is mid-task
        assert taken.payload == {"n": 1}
        channel = queue.channel
        channel._disconnect_pools()  # the lost connection's pools are dropped...
        channel.connection.client = None  # ...and the transport detached (Connection.collect)
        channel.close()
    with app.connection_for_write() as connection:
        again = connection.SimpleQueue(queue_name)
        assert again.get(timeout=5).payload == {"n": 1}
        again.queue.delete()


@pytest.mark.usefixtures("service")
def test_a_channel_that_never_reached_redis_fails_with_a_connection_error() -> None:
    import redis

    with app.connection_for_write() as connection:
        channel = Channel(connection.transport)
    channel._remembered = None
    channel.connection = None  # closed before it ever built a pool
    with pytest.raises(redis.ConnectionError):
        channel._connparams()
