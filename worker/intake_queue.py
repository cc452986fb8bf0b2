"""Intake from the queue: any producer, in any language, publishes a JSON incident to the
`incidents` queue; this Celery consumer step takes it down the same path as the HTTP API.

The message body is an incident as in `schemas/incident.schema.json`. A repeat is harmless:
the idempotency key is the message's `message_id` (or an `idempotency-key` header), and the
incident's source + external id decide as they do over HTTP.

A message that can never become a case (not JSON, wrong types, too large, undecodable) is
acknowledged into a dead-letter record with the reason: never retried forever, never lost.
If the database cannot be reached, the message goes back on the queue for a later try.
"""

from __future__ import annotations

import time
from typing import Any

from celery import bootsteps
from kombu.entity import Queue
from kombu.messaging import Consumer
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.contracts.incident import Incident
from worker.db.session import get_engine, transaction
from worker.dead_letters import record_dead_letter
from worker.logging import get_logger
from worker.stages.intake import accept_incident

log = get_logger("closeloop.intake_queue")

INCIDENTS_QUEUE = "incidents"
MAX_MESSAGE_BYTES = 256 * 1024
ACTOR = Actor(kind=ActorKind.system, id="intake-queue")
_BACKOFF_S = 1.0


def idempotency_key(message: Any) -> str | None:
    headers = message.headers or {}
    key = headers.get("idempotency-key") or message.properties.get("message_id")
    return f"queue:{key}"[:200] if key else None


def describe_errors(error: ValidationError) -> str:
    # The offending values are left out: they may be a citizen's phone number.
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '(body)'}: {item['msg']}"
        for item in error.errors()
    )


def file_message(body: Any, message: Any) -> None:
    """Callback for one decoded message: make it a case, or dead-letter it; then ack."""
    raw = message.body
    if len(raw) > MAX_MESSAGE_BYTES:
        return _reject(message, f"message of {len(raw)} bytes is over {MAX_MESSAGE_BYTES} bytes")
    try:
        incident = Incident.model_validate(body)
    except ValidationError as error:
        return _reject(message, f"not a valid incident: {describe_errors(error)}")
    try:
        with transaction() as session:
            accepted = accept_incident(
                session, incident, actor=ACTOR, idempotency_key=idempotency_key(message)
            )
            case_id, created = accepted.case.id, accepted.created
    except (OperationalError, InterfaceError) as error:
        log.warning("database unavailable; message back on the queue", error=str(error))
        time.sleep(_BACKOFF_S)
        message.requeue()
        return None
    log.info("incident filed from the queue", case_id=case_id, created=created)
    message.ack()
    return None


def on_decode_error(message: Any, error: Exception) -> None:
    _reject(message, f"cannot decode the message ({message.content_type}): {error}")


def _reject(message: Any, reason: str) -> None:
    record_dead_letter(
        get_engine(),
        kind="intake",
        reason=reason,
        body=message.body,
        details={
            "queue": INCIDENTS_QUEUE,
            "content_type": message.content_type,
            "content_encoding": message.content_encoding,
        },
    )
    message.ack()


class IncidentConsumer(bootsteps.ConsumerStep):  # type: ignore[misc]
    """Adds the `incidents` queue consumer to a Celery worker."""

    def get_consumers(self, channel: Any) -> list[Consumer]:
        consumer = Consumer(
            channel,
            queues=[Queue(INCIDENTS_QUEUE)],
            callbacks=[file_message],
            on_decode_error=on_decode_error,
            accept=["json"],
            prefetch_count=8,
        )
        return [consumer]
