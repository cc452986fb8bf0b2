"""The audit store: append-only events, hash-chained per case, and their verification.

Each event's hash is SHA-256 over a canonical JSON encoding of the event, previous hash
included, so altering, removing or reordering any event breaks the chain from there on. The
case row keeps the chain's head (last sequence number and hash) so that a removed *last*
event is caught too. Verification streams rows in chain order and holds one case at a time.

Events are written with prebuilt plain statements, after the case row's guarded write, not as
ORM objects: on the pipeline's busiest paths the unit of work cost several times the SQL.
Inside a savepoint an event stays an ORM object (its rollback must take the event back).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from pydantic_core import to_jsonable_python
from sqlalchemy import Engine, Insert, Table, bindparam, insert, inspect, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import CaseState
from worker.db.guard import ConcurrentChange, flush_guarded
from worker.db.models import AuditEvent, Case, Reporter
from worker.metrics.counting import note_written

GENESIS = "0" * 64


_ENCODING_VERSION = "closeloop-audit-v1"


def canonical(
    case_id: str,
    seq: int,
    at: datetime,
    actor_kind: str,
    actor_id: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    data: Any,
    rules_version: str | None,
    prev_hash: str,
) -> bytes:
    """The bytes that are hashed: a fixed-order JSON array, object keys sorted, UTF-8,
    the time as microsecond UTC. Changing this changes every hash: bump the version tag."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    document = [
        _ENCODING_VERSION,
        case_id,
        seq,
        at.isoformat(timespec="microseconds"),
        actor_kind,
        actor_id,
        action,
        from_state,
        to_state,
        data,
        rules_version,
        prev_hash,
    ]
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def chain_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical(**fields)).hexdigest()


_CASES: Table = Case.__table__  # type: ignore[assignment]
_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
# Built once: building a statement costs more Python than sending it.
_READ_HEAD = select(_CASES.c.version, _CASES.c.audit_seq, _CASES.c.audit_head).where(
    _CASES.c.id == bindparam("case_id")
)
_MOVE_HEAD = (
    update(_CASES)
    .where(_CASES.c.id == bindparam("case_id"), _CASES.c.version == bindparam("read_version"))
    .values(
        version=bindparam("new_version"),
        audit_seq=bindparam("new_seq"),
        audit_head=bindparam("new_head"),
        updated_at=bindparam("at"),
    )
)
_ADD_EVENT = insert(_EVENTS)
_REPORTERS: Table = Reporter.__table__  # type: ignore[assignment]
_ADD_REPORTER = insert(_REPORTERS)


def append_event(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    action: str,
    from_state: CaseState | None = None,
    to_state: CaseState | None = None,
    data: dict[str, Any] | None = None,
    rules_version: str | None = None,
) -> AuditEvent:
    """Add the next event of `case`'s chain to the session (the caller's transaction).

    The case row carries the head; its version column makes two writers that both read the
    same head collide at flush instead of forking the chain.
    """
    fields = _event_fields(
        case.id,
        case.audit_seq + 1,
        case.audit_head,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        data=data,
        rules_version=rules_version,
    )
    digest = chain_hash(**fields)
    case.audit_seq, case.audit_head = fields["seq"], digest
    session.add(case)
    if session.in_nested_transaction():
        # One flush writes both, the case row first (`AuditEvent.case` orders the two), and a
        # rollback of the savepoint leaves the event transient, so it is never counted.
        event = AuditEvent(**fields, hash=digest)
        session.add(event)
        flush_guarded(session, "case", case.id)
        return event
    # The case row first: its version check is what tells a concurrent writer apart. Then
    # the event, as a plain statement (an ORM object costs several times more to write).
    flush_guarded(session, "case", case.id)
    event_row = {**fields, "hash": digest}
    session.connection().execute(_ADD_EVENT, event_row)
    note_written(session, action, fields["to_state"], case)
    return AuditEvent(**event_row)


def _event_fields(
    case_id: str,
    seq: int,
    prev_hash: str | None,
    *,
    actor: Actor,
    action: str,
    from_state: CaseState | None = None,
    to_state: CaseState | None = None,
    data: dict[str, Any] | None = None,
    rules_version: str | None = None,
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "seq": seq,
        "at": now(),
        "actor_kind": actor.kind.value,
        "actor_id": actor.id,
        "action": action,
        "from_state": from_state.value if from_state else None,
        "to_state": to_state.value if to_state else None,
        # What is hashed must be exactly what is stored and read back: JSON-native values only.
        "data": to_jsonable_python(data or {}),
        "rules_version": rules_version,
        "prev_hash": prev_hash or GENESIS,
    }


def append_note(
    session: Session,
    case_id: str,
    *,
    actor: Actor,
    action: str,
    data: dict[str, Any] | None = None,
    rules_version: str | None = None,
) -> bool:
    """An event that moves nothing but the chain (a delivery's outcome, say) on a case this
    session has no object of; False if there is no such case.

    It reads only the chain's head and the version, and writes them back under the same
    version guard as `append_event` (a concurrent writer gets `ConcurrentChange`), with plain
    statements: no case object is built, which is most of the work of a webhook's record
    step. A case the session holds, or a savepoint (whose rollback must undo the count), goes
    the ORM way instead, so the session never holds a case row older than the database's.
    """
    if session.in_nested_transaction() or _held(session, case_id):
        case = session.get(Case, case_id)
        if case is None:
            return False
        append_event(
            session, case, actor=actor, action=action, data=data, rules_version=rules_version
        )
        return True
    connection = session.connection()
    head = connection.execute(_READ_HEAD, {"case_id": case_id}).one_or_none()
    if head is None:
        return False
    version, seq, prev_hash = head
    fields = _event_fields(
        case_id,
        seq + 1,
        prev_hash,
        actor=actor,
        action=action,
        data=data,
        rules_version=rules_version,
    )
    digest = chain_hash(**fields)
    moved = connection.execute(
        _MOVE_HEAD,
        {
            "case_id": case_id,
            "read_version": version,
            "new_version": version + 1,
            "new_seq": seq + 1,
            "new_head": digest,
            "at": fields["at"],
        },
    )
    if moved.rowcount != 1:
        raise ConcurrentChange("case", case_id)
    connection.execute(_ADD_EVENT, {**fields, "hash": digest})
    note_written(session, action)
    return True


@lru_cache(maxsize=4)
def _insert_new_case(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, in the dialect's own words."""
    from sqlalchemy.dialects import postgresql, sqlite

    if dialect == "sqlite":
        return sqlite.insert(_CASES).on_conflict_do_nothing().returning(_CASES.c.id)
    return postgresql.insert(_CASES).on_conflict_do_nothing().returning(_CASES.c.id)


def open_case_row(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
    reporter: dict[str, str | None] | None = None,
) -> bool:
    """Insert a new case in the state `worker.lifecycle.open_case` (the one caller) gave it,
    with the first event of its chain; see there."""
    fields = _event_fields(
        case.id,
        1,
        None,
        actor=actor,
        action="case.received",
        to_state=CaseState(case.state),
        data=data,
    )
    digest = chain_hash(**fields)
    case.version, case.audit_seq, case.audit_head = 1, 1, digest
    case.received_at = case.updated_at = fields["at"]
    row = {column.key: value for column, value in _set_columns(case)}
    connection = session.connection()
    inserted = connection.execute(_insert_new_case(connection.dialect.name), row).first()
    if inserted is None:
        return False
    connection.execute(_ADD_EVENT, {**fields, "hash": digest})
    if reporter is not None:
        connection.execute(_ADD_REPORTER, {"case_id": case.id, **reporter})
    # In the session as if just loaded: what was not set (column defaults) loads on first use.
    make_transient_to_detached(case)
    session.add(case)
    note_written(session, "case.received", case.state, case)
    return True


def _set_columns(case: Case) -> Iterator[tuple[Any, Any]]:
    state = inspect(case).dict
    for column in _CASES.columns:
        if column.key in state:
            yield column, state[column.key]


def _held(session: Session, case_id: str) -> bool:
    if identity_key(Case, case_id) in session.identity_map:
        return True
    return any(isinstance(obj, Case) and obj.id == case_id for obj in session.new)


def timeline(session: Session, case_id: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.seq)
        )
    )


@dataclass(frozen=True)
class Problem:
    case_id: str
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"event {self.seq}" if self.seq is not None else "chain head"
        return f"case {self.case_id}, {where}: {self.what}"


@dataclass
class VerifyReport:
    events: int = 0
    cases: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


_COLUMNS = (
    Case.id,
    Case.audit_seq,
    Case.audit_head,
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor_kind,
    AuditEvent.actor_id,
    AuditEvent.action,
    AuditEvent.from_state,
    AuditEvent.to_state,
    AuditEvent.data,
    AuditEvent.rules_version,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def _rows(engine: Engine, case_id: str | None, batch: int) -> Iterator[tuple[Any, ...]]:
    query = (
        select(*_COLUMNS)
        .select_from(Case)
        .outerjoin(AuditEvent, AuditEvent.case_id == Case.id)
        .order_by(Case.id, AuditEvent.seq)
    )
    if case_id is not None:
        query = query.where(Case.id == case_id)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch).execute(query)
        for partition in result.partitions():
            yield from partition


def verify(engine: Engine, case_id: str | None = None, batch: int = 10_000) -> VerifyReport:
    """Check every chain (or one case's). Streams: memory does not grow with the store.

    Rows come ordered by case and sequence; for each case only the last hash is kept. The
    first broken event of a case is reported and the rest of that chain is skipped.
    """
    report = VerifyReport()
    started = time.perf_counter()
    sha256 = hashlib.sha256
    current: str | None = None
    head_seq, head_hash, last_seq, last_hash, broken = 0, GENESIS, 0, GENESIS, False
    problems = report.problems
    for row in _rows(engine, case_id, batch):
        (
            cid,
            case_seq,
            case_head,
            seq,
            at,
            kind,
            actor,
            action,
            frm,
            to,
            data,
            rules,
            prev,
            digest,
        ) = row
        if cid != current:
            if current is not None and not broken:
                _check_head(problems, current, head_seq, head_hash, last_seq, last_hash)
            current, head_seq, head_hash = cid, case_seq, case_head or GENESIS
            last_seq, last_hash, broken = 0, GENESIS, False
            report.cases += 1
        if seq is None:
            continue
        report.events += 1
        if broken:
            continue
        if seq != last_seq + 1:
            what = f"expected sequence {last_seq + 1}, found {seq}: events missing or reordered"
        elif prev != last_hash:
            what = "previous-hash link broken: an earlier event was removed, swapped or altered"
        elif (
            sha256(
                canonical(cid, seq, at, kind, actor, action, frm, to, data, rules, prev)
            ).hexdigest()
            != digest
        ):
            what = "content does not match its hash: the event was altered"
        else:
            last_seq, last_hash = seq, digest
            continue
        problems.append(Problem(cid, seq, what))
        broken = True
    if current is not None and not broken:
        _check_head(problems, current, head_seq, head_hash, last_seq, last_hash)
    report.seconds = time.perf_counter() - started
    return report


def _check_head(
    problems: list[Problem], case_id: str, head_seq: int, head_hash: str, seq: int, digest: str
) -> None:
    if (seq, digest) != (head_seq, head_hash):
        problems.append(
            Problem(
                case_id,
                None,
                f"the case records {head_seq} events but the chain ends at {seq}: "
                "events at the end were removed or the head was altered",
            )
        )
