"""The Redis transport shares one client per channel, and drops it with its pool."""

from __future__ import annotations

import pytest

from worker.broker_transport import TRANSPORT, UNCONFIGURED_TRANSPORT, Channel, Transport
from worker.celery_app import _transport_for, app


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
