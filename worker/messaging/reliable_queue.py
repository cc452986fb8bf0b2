"""A Redis list consumed so that no message is lost when its consumer dies.

kombu's Redis transport pops a message (BRPOP) and only afterwards records it as
unacknowledged; a consumer killed between the two loses that message for good (kombu #305,
celery #7950). For Celery's own tasks closeloop does not depend on it: the database holds
their work and the sweeper and the outbox relay send it again. An incident on the intake
queue exists nowhere else, so the intake queue is read this way instead:

- a message moves atomically (BLMOVE) from the queue into the consumer's own processing
  list, and leaves that list only once it has been handled;
- every consumer keeps a heartbeat key alive; one whose heartbeat has lapsed is dead, and any
  live consumer moves the dead one's processing list back onto the queue, one atomic LMOVE
  per message;
- each take of a message is counted, so a message that kills its consumer every time is
  recognised after a cap instead of circling forever.

The price is at-least-once: a message handled just before its consumer died comes again,
and the idempotency keys make that harmless.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import redis


@dataclass(frozen=True)
class Taken:
    raw: bytes
    takes: int  # how many times this message was taken, this time included


def fingerprint(raw: bytes) -> str:
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


class ReliableQueue:
    """One consumer's view of the list `queue_key`; its bookkeeping lives under `namespace`."""

    def __init__(
        self, client: redis.Redis, queue_key: str, namespace: str, heartbeat_timeout: float
    ) -> None:
        self.client = client
        self.queue_key = queue_key
        self.namespace = namespace
        self.heartbeat_timeout = heartbeat_timeout
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.processing_key = self._processing_key(self.consumer)

    # keys

    def _processing_key(self, consumer: str) -> str:
        return f"{self.namespace}:processing:{consumer}"

    def _alive_key(self, consumer: str) -> str:
        return f"{self.namespace}:alive:{consumer}"

    @property
    def _consumers_key(self) -> str:
        return f"{self.namespace}:consumers"

    @property
    def _takes_key(self) -> str:
        return f"{self.namespace}:takes"

    # one consumer's work

    def heartbeat(self) -> None:
        """Say this consumer is alive for another `heartbeat_timeout` seconds."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._alive_key(self.consumer), "1", px=int(self.heartbeat_timeout * 1000))
            pipe.sadd(self._consumers_key, self.consumer)
            pipe.execute()

    def take(self, timeout: int) -> Taken | None:
        """The oldest message, moved into this consumer's processing list; None if none came
        within `timeout` seconds."""
        moved = self.client.blmove(self.queue_key, self.processing_key, timeout, "RIGHT", "LEFT")
        if moved is None:
            return None
        raw = moved if isinstance(moved, bytes) else moved.encode()
        takes = int(self.client.hincrby(self._takes_key, fingerprint(raw), 1))
        return Taken(raw, takes)

    def done(self, raw: bytes) -> None:
        """The message was handled (filed, or kept as a dead letter): forget it."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lrem(self.processing_key, 1, _value(raw))
            pipe.hdel(self._takes_key, fingerprint(raw))
            pipe.execute()

    def give_back(self, raw: bytes, counted: bool) -> None:
        """Put the message back at the head of the queue, to be taken again. A message given
        back because something outside it failed (the database was down) is not `counted`
        against the cap; one whose handling failed unexpectedly is."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(self.queue_key, raw)
            pipe.lrem(self.processing_key, 1, _value(raw))
            if not counted:
                pipe.hincrby(self._takes_key, fingerprint(raw), -1)
            pipe.execute()

    def park(self, raw: bytes, parked_key: str, entry: bytes) -> None:
        """The message is done with, but what it became (`entry`) could not be stored where it
        belongs: keep `entry` on the list `parked_key` instead, in the same step that forgets
        the message, so it is neither lost nor taken again."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(parked_key, entry)
            pipe.lrem(self.processing_key, 1, _value(raw))
            pipe.hdel(self._takes_key, fingerprint(raw))
            pipe.execute()

    # everyone's

    def recover_abandoned(self) -> int:
        """Move the messages of every dead consumer back onto the queue; how many moved."""
        moved = 0
        for member in self.client.smembers(self._consumers_key):
            consumer = member.decode() if isinstance(member, bytes) else str(member)
            if consumer == self.consumer or self.client.exists(self._alive_key(consumer)):
                continue
            moved += self._return_all(consumer)
            self.client.srem(self._consumers_key, consumer)
        return moved

    def leave(self) -> int:
        """On a clean stop: give back anything still held and stop being a consumer."""
        moved = self._return_all(self.consumer)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._alive_key(self.consumer))
            pipe.srem(self._consumers_key, self.consumer)
            pipe.execute()
        return moved

    def _return_all(self, consumer: str) -> int:
        # The newest first onto the head of the queue, so the oldest ends up first in line.
        moved = 0
        while self.client.lmove(self._processing_key(consumer), self.queue_key, "LEFT", "RIGHT"):
            moved += 1
        return moved

    def held(self) -> int:
        return int(self.client.llen(self.processing_key))


def _value(raw: bytes) -> Any:
    # redis-py sends bytes as they are; its type hints only say str.
    return raw
