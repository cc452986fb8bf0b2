"""One attempt of one delivery: claim it, POST it signed, record what happened.

Three short steps, none holding a transaction open across the network:

1. claim (one transaction): the delivery is due, its endpoint has a free slot in this process
   (worker.webhooks.slots; else it waits a moment, not an attempt) and is neither disabled
   nor behind an open circuit; it moves to `sending` with a lease (`next_attempt_at` = lease
   end) under its version column, so of two workers only one wins. A worker that dies after
   this leaves the delivery due again when the lease ends, and the lost attempt is noted then.
2. POST (no transaction): the body exactly as signed, within `webhook_timeout` for the whole
   attempt (worker.webhooks.deadline), redirects not followed.
3. record (one transaction): the attempt row, the outcome on the delivery, the endpoint's
   health, the audit event; fenced on the claim, so an attempt whose lease ran out and was
   taken over by another worker cannot overwrite that worker's outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache

import httpx
import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from worker import __version__
from worker.clock import now
from worker.config import get_settings
from worker.db.guard import ConcurrentChange
from worker.db.models import Delivery
from worker.db.session import transaction
from worker.ledger.deliveries import (
    WAITING,
    Sending,
    add_attempt,
    move,
    read,
)
from worker.ledger.deliveries import DeliveryState as D
from worker.logging import get_logger
from worker.urls import safe_url
from worker.webhooks import circuit, slots
from worker.webhooks.audit import record_delivery
from worker.webhooks.deadline import DeadlineBackend, deadline
from worker.webhooks.endpoints import Endpoint, EndpointLookup, EndpointUnusable, endpoint_for
from worker.webhooks.outcomes import Answer, Outcome, Verdict, judge
from worker.webhooks.schedule import next_attempt_at, parse_duration, parse_schedule
from worker.webhooks.signing import signed_headers

log = get_logger("closeloop.webhooks")

EXCERPT_BYTES = 512
RECORD_TRIES = 3
# A delivery whose endpoint has no free slot is due again this soon (beat's next scans).
BUSY_WAIT = timedelta(seconds=1)


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    webhook_id: str
    attempt_no: int
    body: bytes
    endpoint: Endpoint | None
    problem: str | None = None  # why it cannot be sent as configured: this attempt's failure
    # The delivery row as the claim committed it: recording the outcome starts from it instead
    # of reading it again (its version column catches anyone who wrote to it in between).
    delivery: Sending | None = field(default=None, compare=False, repr=False)
    slot: str | None = None  # the endpoint slot this attempt holds (`slots.give_back` it)


def lease() -> timedelta:
    """How long a claimed attempt may take before the delivery is due again: the attempt's
    whole timeout, and a margin for recording it."""
    return timedelta(seconds=get_settings().webhook_timeout + 30)


def send_delivery(
    engine: Engine, delivery_id: str, *, endpoints: EndpointLookup = endpoint_for
) -> str:
    """Make the delivery's next attempt if it is due. Returns what became of it: delivered,
    retry, dead, disabled; or, without an attempt, not due (not yet, in flight elsewhere, or
    finished), held (its endpoint's circuit is open), dead (its endpoint is disabled)."""
    claim = claim_delivery(engine, delivery_id, endpoints)
    if not isinstance(claim, Claim):
        return claim
    try:
        answer = post(claim)
    finally:
        if claim.slot is not None:
            slots.give_back(claim.slot)
    return record_answer(engine, claim, answer)


def is_due(delivery: Delivery | Sending, at: datetime) -> bool:
    if delivery.state == D.queued:
        return True  # the scan decided it is due; this is the send it queued
    due = delivery.next_attempt_at
    return delivery.state in WAITING and due is not None and due <= at


def note_lost_attempt(session: Session, delivery: Delivery | Sending) -> None:
    """A `sending` delivery whose lease ran out: its worker stopped mid-send."""
    if delivery.state == D.sending:
        add_attempt(
            session,
            delivery.id,
            delivery.attempts,
            at=now(),
            error="no outcome recorded: the worker stopped mid-send and its lease ran out",
        )


def claim_delivery(engine: Engine, delivery_id: str, endpoints: EndpointLookup) -> Claim | str:
    """The claim on the delivery's next attempt, or why there is none to make now. A claim
    may hold a slot of its endpoint: the caller gives it back after the attempt."""
    held: list[str] = []
    try:
        with transaction(engine) as session:
            return _claim(session, delivery_id, endpoints, held)
    except ConcurrentChange:
        _give_back(held)
        return "not due"  # another worker claimed it first: this attempt is theirs
    except BaseException:
        _give_back(held)  # the claim did not commit: no attempt will use the slot
        raise


def _give_back(held: list[str]) -> None:
    for endpoint in held:
        slots.give_back(endpoint)


def _claim(
    session: Session, delivery_id: str, endpoints: EndpointLookup, held: list[str]
) -> Claim | str:
    at = now()
    delivery = read(session, delivery_id)
    if delivery is None or not is_due(delivery, at):
        return "not due"
    note_lost_attempt(session, delivery)
    try:
        endpoint: Endpoint | None = endpoints(delivery.department)
        problem = None
    except EndpointUnusable as error:
        endpoint, problem = None, str(error)
    if endpoint is not None:
        if not slots.take(endpoint.url, get_settings().webhook_endpoint_concurrency):
            return _wait_for_slot(session, delivery, at)
        held.append(endpoint.url)
        refused = _gate(session, delivery, endpoint, at)
        if refused is not None:
            held.remove(endpoint.url)
            slots.give_back(endpoint.url)
            return refused
    move(
        session,
        delivery,
        D.sending,
        attempts=delivery.attempts + 1,
        next_attempt_at=at + lease(),
    )
    return Claim(
        delivery_id=delivery.id,
        webhook_id=delivery.webhook_id,
        attempt_no=delivery.attempts,
        body=envelope(delivery),
        endpoint=endpoint,
        problem=problem,
        delivery=delivery,
        slot=held[0] if held else None,
    )


def _wait_for_slot(session: Session, delivery: Sending, at: datetime) -> str:
    """The endpoint has as many attempts in flight here as it may: this one waits a moment.
    Not an attempt, so nothing is counted; pending, so the next scan queues it again."""
    move(session, delivery, D.pending, next_attempt_at=at + BUSY_WAIT)
    return "busy"


def _gate(session: Session, delivery: Sending, endpoint: Endpoint, at: datetime) -> str | None:
    """None when the delivery may go now; else what became of it instead."""
    state = circuit.endpoint_state(session, endpoint)
    decision = circuit.gate(state, at, lease())
    circuit.save(session, state)  # a new URL's fresh start, or the probe's lease
    if decision.disabled is not None:
        _bury(session, delivery, f"endpoint disabled: {decision.disabled}")
        return "dead"
    if decision.hold_until is not None:
        # Held by the open circuit: not an attempt, so nothing is counted.
        move(session, delivery, D.pending, next_attempt_at=decision.hold_until)
        return "held"
    return None


def envelope(delivery: Sending) -> bytes:
    """The body, the same bytes on every attempt (the signature covers them)."""
    return orjson.dumps(
        {
            "type": delivery.event_type,
            "timestamp": delivery.created_at.isoformat(),
            "data": delivery.payload,
        }
    )


@lru_cache(maxsize=4)
def _client(timeout: float) -> httpx.Client:
    transport = httpx.HTTPTransport()
    # httpx has no option for httpcore's network backend; its pool takes one, and the
    # attempt's deadline lives there (worker.webhooks.deadline).
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore's connection pool changed: cannot bound webhook attempts")
    pool._network_backend = DeadlineBackend()
    return httpx.Client(
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        headers={"user-agent": f"closeloop/{__version__}", "content-type": "application/json"},
    )


def post(claim: Claim) -> Answer:
    started_at, clock = now(), time.perf_counter()

    def spent() -> float:
        return (time.perf_counter() - clock) * 1000

    if claim.endpoint is None:
        return Answer(started_at, 0.0, error=claim.problem, reached_endpoint=False)
    try:
        headers = signed_headers(claim.webhook_id, claim.body, claim.endpoint.secrets)
    except Exception as error:  # a malformed secret: say which department's, not the secret
        problem = f"cannot sign for {claim.endpoint.department}: {type(error).__name__}: {error}"
        return Answer(started_at, 0.0, error=problem, reached_endpoint=False)
    timeout = get_settings().webhook_timeout
    try:
        with (
            deadline(timeout),
            _client(timeout).stream(
                "POST", claim.endpoint.url, content=claim.body, headers=headers
            ) as response,
        ):
            return Answer(
                started_at,
                spent(),
                status=response.status_code,
                retry_after=response.headers.get("retry-after"),
                location=response.headers.get("location"),
                excerpt=_excerpt(response),
            )
    except httpx.TimeoutException:
        return Answer(started_at, spent(), error=f"no answer within {timeout:g} s (timeout)")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return Answer(started_at, spent(), error=f"{type(error).__name__}: {error}")


def _excerpt(response: httpx.Response) -> str:
    # Read only the start: an endpoint could answer an error with megabytes.
    if 200 <= response.status_code < 300:
        return ""
    chunk = b""
    for part in response.iter_bytes():
        chunk += part
        if len(chunk) >= EXCERPT_BYTES:
            break
    return chunk[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def record_answer(engine: Engine, claim: Claim, answer: Answer) -> str:
    known = claim.delivery
    for attempt in range(RECORD_TRIES):
        try:
            with transaction(engine) as session:
                return _record(session, claim, answer, known)
        except (ConcurrentChange, StaleDataError):
            # The case changed meanwhile (another stage wrote its timeline), or the delivery
            # did (its lease ran out and another worker took it over): read both afresh and
            # write again; the second finds the attempt superseded. (StaleDataError is the
            # same version guard, met by an autoflush rather than a guarded flush.)
            known = None
            if attempt == RECORD_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _record(session: Session, claim: Claim, answer: Answer, known: Sending | None) -> str:
    at = now()
    verdict = judge(answer, at)
    add_attempt(
        session,
        claim.delivery_id,
        claim.attempt_no,
        at=answer.started_at,
        status_code=answer.status,
        error=verdict.error if verdict.outcome is not Outcome.delivered else None,
        duration_ms=answer.duration_ms,
    )
    # As the claim left it (a stale copy fails its version guard when written), or afresh.
    delivery = replace(known) if known is not None else read(session, claim.delivery_id)
    if delivery is None:
        raise LookupError(f"delivery {claim.delivery_id} is gone")
    if delivery.state != D.sending or delivery.attempts != claim.attempt_no:
        log.warning("attempt outlived its lease", delivery_id=delivery.id, attempt=claim.attempt_no)
        return "superseded"
    delivery.last_status = answer.status
    state = circuit.endpoint_state(session, claim.endpoint) if claim.endpoint else None
    if verdict.outcome is Outcome.delivered:
        outcome = _delivered(session, delivery, state, at, answer)
    elif verdict.outcome is Outcome.gone:
        outcome = _gone(session, delivery, state, at, verdict)
    else:
        outcome = _failed(session, delivery, state, at, verdict)
    if state is not None:
        circuit.save(session, state)  # whatever the outcome changed of the endpoint's health
    return outcome


def _delivered(
    session: Session,
    delivery: Sending,
    state: circuit.Health | None,
    at: datetime,
    answer: Answer,
) -> str:
    if state is not None:
        circuit.note_success(session, state, at)
    move(session, delivery, D.delivered, delivered_at=at, next_attempt_at=None, last_error=None)
    record_delivery(
        session,
        delivery,
        "delivery.succeeded",
        attempt=delivery.attempts,
        status=answer.status,
        duration_ms=round(answer.duration_ms, 1),
    )
    return "delivered"


def _failed(
    session: Session,
    delivery: Sending,
    state: circuit.Health | None,
    at: datetime,
    verdict: Verdict,
) -> str:
    settings = get_settings()
    if state is not None and verdict.counts_against_endpoint:
        opened = circuit.note_failure(
            state,
            at,
            threshold=settings.webhook_circuit_failures,
            cooldown=parse_duration(settings.webhook_circuit_cooldown),
        )
        if opened:
            until = str(state.circuit_open_until)
            log.warning("circuit open", department=state.department, until=until)
    delivery.last_error = verdict.error
    due = next_attempt_at(
        parse_schedule(settings.webhook_schedule),
        delivery.attempts - delivery.attempts_before_replay,
        at,
        jitter=settings.webhook_jitter,
        retry_after=verdict.retry_after,
    )
    record_delivery(
        session,
        delivery,
        "delivery.failed",
        attempt=delivery.attempts,
        status=delivery.last_status,
        error=verdict.error,
        next_attempt_at=due.isoformat() if due else None,
    )
    _log_failure(delivery, verdict, due)
    if due is None:
        _bury(session, delivery, f"gave up after {delivery.attempts} attempts: {verdict.error}")
        return "dead"
    move(session, delivery, D.pending, next_attempt_at=due)
    return "retry"


def _log_failure(delivery: Sending, verdict: Verdict, due: datetime | None) -> None:
    """Why an attempt failed and what happens next, where an operator looks first (the
    task's own line only says it succeeded, returning 'retry')."""
    log.warning(
        "webhook attempt failed" if due is not None else "webhook attempt failed; giving up",
        department=delivery.department,
        delivery_id=delivery.id,
        case_id=delivery.case_id,
        event_type=delivery.event_type,
        attempt=delivery.attempts,
        status=delivery.last_status,
        error=verdict.error,
        next_attempt_at=due.isoformat() if due is not None else None,
    )


def _gone(
    session: Session,
    delivery: Sending,
    state: circuit.Health | None,
    at: datetime,
    verdict: Verdict,
) -> str:
    from worker.webhooks.notify import tell_ops_endpoint_disabled

    reason = f"{verdict.error} (delivery {delivery.id}, {at.isoformat()})"
    log.warning(
        "webhook endpoint gone (410); disabled until a supervisor enables it",
        department=delivery.department,
        delivery_id=delivery.id,
        case_id=delivery.case_id,
        attempt=delivery.attempts,
        status=delivery.last_status,
        error=verdict.error,
    )
    if state is not None:
        circuit.disable(state, at, reason)
        # The URL as it may be shown: the audit store is permanent and read by other departments.
        record_delivery(
            session, delivery, "delivery.endpoint_disabled", url=safe_url(state.url), status=410
        )
        tell_ops_endpoint_disabled(session, delivery, state)
    _bury(session, delivery, verdict.error or "endpoint gone")
    return "disabled"


def _bury(session: Session, delivery: Sending, reason: str) -> None:
    """A dead letter: kept, listed for supervisors, replayable with the same webhook-id."""
    move(session, delivery, D.dead, next_attempt_at=None, last_error=reason)
    record_delivery(session, delivery, "delivery.dead", attempts=delivery.attempts, reason=reason)
