"""Intake from the queue: any producer, in any language, puts a JSON incident on the
`incidents` queue; consumer threads inside a worker take it down the same path as HTTP.

A message is kombu's envelope (what `closeloop intake send` and any kombu or Celery producer
publish, the incident in its `body`), or simply the incident's JSON itself. A repeat is
harmless: the idempotency key is the envelope's `message_id` (or an `idempotency-key`
header), and the incident's source + external id decide as they do over HTTP.

The queue is read as a reliable queue (worker/messaging/reliable_queue.py): a consumer killed at any
moment leaves its message to be taken again, never lost. A message that can never become a
case (not JSON, wrong types, too large, undecodable) is kept as a dead-letter record with the
reason, whatever its bytes were: never retried forever, never lost. If the database cannot be
reached, a good message goes back on the queue for a later try; a dead letter never does: if
it cannot be written, it is parked on a Redis list (`closeloop:intake:dead_letters`) and
written to the database from there once it can be.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import Any

import orjson
import redis
from celery import bootsteps
from celery.worker import state as worker_state
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from worker.config import get_settings
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.contracts.incident import Incident, contains_nul
from worker.db.session import get_engine, transaction
from worker.idempotency import QUEUE_SCOPE, Key, KeyReused
from worker.logging import get_logger, scrub_text
from worker.messaging.broker import key, redis_client
from worker.messaging.dead_letters import record_dead_letter, storable, storable_text
from worker.messaging.reliable_queue import ReliableQueue, Taken
from worker.stages.intake import accept_incident

log = get_logger("closeloop.intake_queue")

INCIDENTS_QUEUE = "incidents"
MAX_MESSAGE_BYTES = 256 * 1024
# An envelope carries the body base64-encoded (4/3 larger) with some headers around it.
MAX_ENVELOPE_BYTES = MAX_MESSAGE_BYTES * 4 // 3 + 64 * 1024
ACTOR = Actor(kind=ActorKind.system, id="intake-queue")
JSON_TYPES = ("application/json", "text/json")


def describe_errors(error: ValidationError) -> str:
    # The offending values are left out: they may be a citizen's phone number.
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '(body)'}: {item['msg']}"
        for item in error.errors()
    )


class BadMessage(ValueError):
    """A message that can never become a case; the text says why."""


@dataclass
class Message:
    body: bytes
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> Key | None:
        key = self.headers.get("idempotency-key") or self.message_id
        # The queue's own scope: an API client's key cannot meet it. (The prefix is what
        # keys looked like before scopes; kept, so that a redelivery across the upgrade
        # still finds its case.)
        return Key(QUEUE_SCOPE, f"queue:{key}"[:200]) if key else None

    def details(self) -> dict[str, Any]:
        return {
            "queue": INCIDENTS_QUEUE,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "message_id": self.message_id,
        }


def open_message(raw: bytes) -> Message:
    """The message in `raw`: kombu's envelope, or a bare incident."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise BadMessage(f"message of {len(raw)} bytes is over {MAX_MESSAGE_BYTES} bytes")
    try:
        outer = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadMessage(f"cannot decode the message (not JSON): {error}") from error
    if not (isinstance(outer, dict) and "body" in outer and "properties" in outer):
        return Message(body=raw)
    properties = outer.get("properties") or {}
    headers = outer.get("headers") or {}
    if not isinstance(properties, dict) or not isinstance(headers, dict):
        raise BadMessage("cannot decode the message: its envelope's properties are not a map")
    body = outer["body"]
    if not isinstance(body, str):
        raise BadMessage("cannot decode the message: its envelope's body is not text")
    try:
        raw_body = (
            base64.b64decode(body, validate=True)
            if properties.get("body_encoding") == "base64"
            else body.encode("utf-8")
        )
    except (binascii.Error, ValueError) as error:
        raise BadMessage(f"cannot decode the message (bad base64 body): {error}") from error
    return Message(
        body=raw_body,
        content_type=str(outer.get("content-type") or "application/json"),
        content_encoding=str(outer.get("content-encoding") or "utf-8"),
        message_id=_text_or_none(properties.get("message_id")),
        headers=headers,
    )


def read_incident(message: Message) -> Incident:
    """The incident in `message`, or BadMessage saying what is wrong with it."""
    if len(message.body) > MAX_MESSAGE_BYTES:
        raise BadMessage(f"message of {len(message.body)} bytes is over {MAX_MESSAGE_BYTES} bytes")
    kind = f"({message.content_type}, {message.content_encoding})"
    if message.content_type.split(";")[0].strip().lower() not in JSON_TYPES:
        raise BadMessage(f"cannot decode the message {kind}: incidents are application/json")
    try:
        text = message.body.decode(codecs.lookup(message.content_encoding).name)
        body = orjson.loads(text)
    except LookupError as error:
        raise BadMessage(f"cannot decode the message {kind}: unknown encoding") from error
    except (UnicodeDecodeError, orjson.JSONDecodeError) as error:
        raise BadMessage(f"cannot decode the message {kind}: {error}") from error
    if contains_nul(body):
        raise BadMessage("not a valid incident: it contains a NUL character (\\u0000)")
    try:
        return Incident.model_validate(body)
    except ValidationError as error:
        raise BadMessage(f"not a valid incident: {describe_errors(error)}") from error


def _text_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


class Outcome(Enum):
    filed = "filed"  # a case was made, or found: the message is done
    dead_lettered = "dead_lettered"  # kept with its reason: the message is done
    parked = "parked"  # its dead letter could not be written: kept in Redis; the message is done
    unavailable = "unavailable"  # the database could not be reached: try again later
    failed = "failed"  # something unexpected: try again, counted against the cap


#: Keeps a dead letter that could not be written to the database (its entry, `park_entry`).
Park = Callable[[bytes], None]


def handle(taken: Taken, cap: int, park: Park) -> Outcome:
    """Make the message a case, or a dead letter (parked with `park` if it cannot be written)."""
    if taken.takes > cap + 1:
        return _dead_letter(
            taken,
            Message(body=taken.raw),
            f"taken {taken.takes - 1} times without being filed: it may stop its worker "
            "every time (CLOSELOOP_REDELIVERY_CAP)",
            park,
        )
    try:
        message = open_message(taken.raw)
    except BadMessage as bad:
        return _dead_letter(taken, Message(body=taken.raw), str(bad), park)
    try:
        incident = read_incident(message)
    except BadMessage as bad:
        return _dead_letter(taken, message, str(bad), park)
    try:
        with transaction() as session:
            accepted = accept_incident(
                session, incident, actor=ACTOR, idempotency_key=message.idempotency_key
            )
            case_id, created = accepted.case.id, accepted.created
    except KeyReused as reused:
        return _dead_letter(taken, message, str(reused), park)
    except (OperationalError, InterfaceError) as error:
        log.warning("database unavailable; the message goes back on the queue", error=str(error))
        return Outcome.unavailable
    log.info("incident filed from the queue", case_id=case_id, created=created)
    return Outcome.filed


def _dead_letter(taken: Taken, message: Message, reason: str, park: Park) -> Outcome:
    """Write the dead letter: the body readable, the message as it was taken in `raw`. If
    that fails for any reason, park it. Never back on the queue: a message whose dead letter
    cannot be written would come back to fail again, forever."""
    try:
        record_dead_letter(
            get_engine(),
            kind="intake",
            reason=reason,
            body=message.body,
            details=message.details(),
            raw=taken.raw,
        )
    except Exception as error:
        log.error(
            "cannot write a dead letter to the database; parked in Redis until it can be",
            error=scrub_text(f"{type(error).__name__}: {error}"),
            reason=scrub_text(reason),
        )
        park(park_entry(reason, message.body, message.details(), taken.raw))
        return Outcome.parked
    return Outcome.dead_lettered


def park_entry(reason: str, body: bytes, details: dict[str, Any], raw: bytes) -> bytes:
    """A dead letter as it waits on the Redis list: JSON, its bytes in base64."""
    return orjson.dumps(
        {
            "kind": "intake",
            "reason": storable_text(reason),
            "body": base64.b64encode(body).decode(),
            "raw": base64.b64encode(raw).decode(),
            "details": storable(details),
        }
    )


def write_parked(entry: bytes) -> None:
    """Write a dead letter kept as `park_entry` to the database."""
    letter = orjson.loads(entry)
    record_dead_letter(
        get_engine(),
        kind=letter["kind"],
        reason=letter["reason"],
        body=base64.b64decode(letter["body"]),
        details=letter["details"],
        raw=base64.b64decode(letter["raw"]),
    )


class IntakeConsumers:
    """Threads that take incidents off the queue, and one that keeps this consumer known alive
    and returns the messages of consumers that died."""

    def __init__(self, threads: int, heartbeat_timeout: float, cap: int) -> None:
        self.queue = ReliableQueue(
            redis_client(),
            queue_key=f"{get_settings().broker_key_prefix}{INCIDENTS_QUEUE}",
            namespace=key("intake"),
            heartbeat_timeout=heartbeat_timeout,
        )
        self.cap = cap
        self.parked_key = key("intake:dead_letters")
        self._failed_parked: set[bytes] = set()  # entries whose write failed, said once
        self.stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._consume, name=f"intake-{n}", daemon=True)
            for n in range(threads)
        ]
        self._threads.append(threading.Thread(target=self._watch, name="intake-watch", daemon=True))

    def start(self) -> None:
        self._redis(self.queue.heartbeat)
        for thread in self._threads:
            thread.start()
        log.info("intake consumers started", consumer=self.queue.consumer)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._redis(self.queue.leave)
        log.info("intake consumers stopped", consumer=self.queue.consumer)

    def _consume(self) -> None:
        while not self.stopping.is_set():
            taken = self._redis(partial(self.queue.take, timeout=1))
            if taken is None:
                continue
            park = partial(self._park, taken.raw)
            try:
                outcome = handle(taken, self.cap, park)
            except Exception:
                log.exception("filing a queued incident failed; it goes back on the queue")
                outcome = Outcome.failed
            if outcome in (Outcome.filed, Outcome.dead_lettered):
                self._redis(partial(self.queue.done, taken.raw), until_done=True)
            elif outcome is Outcome.parked:
                pass  # parking took it off this consumer's list
            else:
                self.stopping.wait(1.0)  # give the database a moment
                counted = outcome is Outcome.failed
                self._redis(partial(self.queue.give_back, taken.raw, counted), until_done=True)

    def _park(self, raw: bytes, entry: bytes) -> None:
        self._redis(partial(self.queue.park, raw, self.parked_key, entry), until_done=True)

    def _watch(self) -> None:
        every = self.queue.heartbeat_timeout / 3
        while not self.stopping.wait(every):
            self._redis(self.queue.heartbeat)
            moved = self._redis(self.queue.recover_abandoned) or 0
            if moved:
                log.warning("returned a dead consumer's incidents to the queue", count=moved)
            self._redis(self.write_parked_letters)

    def write_parked_letters(self, most: int = 100) -> int:
        """Move parked dead letters into the database, oldest first, until one fails (the
        database is still away: the next round tries again). How many were written.

        One consumer at a time (a lock key), and an entry leaves the list only once written:
        a consumer that dies in between leaves it to be written again, at worst twice."""
        client = self.queue.client
        lock = f"{self.parked_key}:writer"
        if not client.llen(self.parked_key) or not client.set(lock, "1", nx=True, px=60_000):
            return 0
        written = 0
        try:
            while written < most and not self.stopping.is_set():
                entry: bytes | None = client.lindex(self.parked_key, -1)  # type: ignore[assignment]
                if entry is None:
                    break
                try:
                    write_parked(entry)
                except Exception as error:
                    if entry not in self._failed_parked:  # said once, not every round
                        self._failed_parked.add(entry)
                        log.error(
                            "a parked dead letter still cannot be written; it stays in Redis",
                            key=self.parked_key,
                            error=scrub_text(f"{type(error).__name__}: {error}"),
                        )
                    break
                client.rpop(self.parked_key)
                self._failed_parked.discard(entry)
                written += 1
        finally:
            client.delete(lock)
        return written

    def _redis(self, call: Any, until_done: bool = False) -> Any:
        """Run a Redis call; on a lost connection wait and (if `until_done`) try again, so a
        message is never left half-handled while Redis restarts."""
        while True:
            try:
                return call()
            except redis.RedisError as error:
                log.warning("redis unavailable for the intake queue", error=str(error))
                # Stopping while Redis is away leaves the message in this consumer's
                # processing list: once its heartbeat lapses, another consumer takes it back.
                if self.stopping.wait(1.0) or not until_done:
                    return None


def consume(threads: int | None = None, parent: int | None = None) -> None:
    """Take incidents off the queue until SIGTERM or SIGINT, or until the process `parent`
    is gone (a worker killed outright must not leave its intake consumer behind)."""
    settings = get_settings()
    consumers = IntakeConsumers(
        threads=threads or settings.intake_consumers,
        heartbeat_timeout=settings.intake_heartbeat_timeout,
        cap=settings.redelivery_cap,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    consumers.start()
    try:
        while not stop.wait(1.0):
            if parent is not None and os.getppid() != parent:
                log.warning("the worker that started this intake consumer is gone; stopping")
                break
    finally:
        consumers.stop()


# How the consumer ends when told to stop: its own clean exit on SIGTERM or SIGINT, or the
# signal itself if it came before the consumer's handlers were in place. Not a crash.
TOLD_TO_STOP = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


class IncidentIntake(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs the intake consumer beside a Celery worker (`--queues` naming `incidents`).

    It is a process of its own (`closeloop intake consume`), not threads in the worker: the
    prefork pool forks new pool processes at any time, and a fork taken while another thread
    holds a lock (an import, a log write) leaves the new process stuck on it forever. The
    worker starts it again if it exits."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def start(self, parent: Any) -> None:
        self._spawn()
        parent.timer.call_repeatedly(2.0, self._keep_running)

    def _spawn(self) -> None:
        command = [
            sys.executable,
            "-m",
            "worker",
            "intake",
            "consume",
            "--parent",
            str(os.getpid()),
        ]
        self.process = subprocess.Popen(command)  # noqa: S603 - our own CLI
        log.info("intake consumer process started", pid=self.process.pid)

    def _keep_running(self) -> None:
        if self._stopping or self.process is None or self.process.poll() is None:
            return
        if worker_state.should_stop is not None or worker_state.should_terminate is not None:
            # The worker is shutting down (Ctrl-C reaches the consumer too, often first): the
            # consumer did as it was told, and the worker's stop step is on its way.
            return
        code = self.process.returncode
        if code in TOLD_TO_STOP:
            log.info("intake consumer process was stopped; starting it again", code=code)
        else:
            log.error("intake consumer process exited; starting it again", code=code)
        self._spawn()

    def stop(self, parent: Any) -> None:
        self._stopping = True
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
