"""The intake queue's reliable consumption, on real Redis: a message taken by a consumer
that dies is put back on the queue by another, in order; nothing is lost in between."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from worker.messaging.reliable_queue import ReliableQueue, Taken

Make = Callable[..., ReliableQueue]


@pytest.fixture
def make(redis_url: str) -> Iterator[Make]:
    """Consumers of one queue under a prefix of this test's own."""
    client = redis.Redis.from_url(redis_url)
    prefix = f"test-rq-{uuid.uuid4().hex[:8]}"

    def consumer(timeout: float = 5.0) -> ReliableQueue:
        return ReliableQueue(client, f"{prefix}:incidents", f"{prefix}:intake", timeout)

    yield consumer
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _queued(q: ReliableQueue) -> list[bytes]:
    """Oldest first: producers push on the left, consumers take from the right."""
    return list(reversed(q.client.lrange(q.queue_key, 0, -1)))


def test_a_taken_message_is_held_until_done(make: Make) -> None:
    q = make()
    q.client.lpush(q.queue_key, b"one", b"two")
    taken = q.take(timeout=1)
    assert taken is not None
    assert (taken.raw, taken.takes) == (b"one", 1)
    assert q.held() == 1
    assert _queued(q) == [b"two"]
    q.done(taken.raw)
    assert q.held() == 0
    assert q.take(timeout=1) == _taken(b"two", 1)


def test_a_dead_consumers_messages_go_back_first_in_line_and_in_order(
    make: Make,
) -> None:
    dead, alive = make(timeout=0.3), make()
    dead.client.lpush(dead.queue_key, b"1", b"2", b"3", b"4")
    dead.heartbeat()
    alive.heartbeat()
    assert [dead.take(timeout=1) for _ in range(3)] == [_taken(m, 1) for m in (b"1", b"2", b"3")]
    # The dead consumer is still within its heartbeat: nothing is taken from it yet.
    assert alive.recover_abandoned() == 0
    time.sleep(0.5)  # ... and now its heartbeat has lapsed: it was killed mid-work
    assert alive.recover_abandoned() == 3
    assert _queued(alive) == [b"1", b"2", b"3", b"4"]
    assert alive.take(timeout=1) == _taken(b"1", 2)
    assert alive.recover_abandoned() == 0  # the dead consumer is forgotten


def test_given_back_for_an_outage_is_not_counted_but_a_failure_is(make: Make) -> None:
    q = make()
    q.client.lpush(q.queue_key, b"m")
    first = q.take(timeout=1)
    assert first is not None
    q.give_back(first.raw, counted=False)
    assert q.take(timeout=1) == _taken(b"m", 1)
    q.give_back(b"m", counted=True)
    assert q.take(timeout=1) == _taken(b"m", 2)
    assert q.held() == 1


def test_leaving_cleanly_gives_back_what_is_held(make: Make) -> None:
    q, other = make(), make()
    q.client.lpush(q.queue_key, b"a", b"b")
    q.heartbeat()
    q.take(timeout=1)
    assert q.leave() == 1
    assert _queued(q) == [b"a", b"b"]
    assert other.recover_abandoned() == 0


def test_nothing_to_take_is_none(make: Make) -> None:
    assert make().take(timeout=1) is None


def _taken(raw: bytes, takes: int) -> Taken:
    return Taken(raw, takes)
