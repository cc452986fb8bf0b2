"""The audit store: append-only events, chained per case with a keyed MAC, and their proof.

Each event's `hash` is HMAC-SHA256, under an audit key kept outside the database (see
`worker.ledger.audit_keys`), over a canonical JSON encoding of the event, previous hash included, so
altering, removing or reordering any event breaks the chain from there on, and nobody without
the key can write an event (or re-seal an altered chain) that verifies. The case row keeps the
chain's head (last sequence number and hash) so that a removed *last* event is caught too; an
anchor (`worker.ledger.audit_anchor`) keeps every head outside the database, so that a chain
cut back together with its head, or removed whole, is caught as well.

Events are written with prebuilt plain statements, after the case row's guarded write, not as
ORM objects: on the pipeline's busiest paths the unit of work cost several times the SQL.
Inside a savepoint an event stays an ORM object (its rollback must take the event back).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
from pydantic_core import to_jsonable_python
from sqlalchemy import Engine, Insert, Table, bindparam, exists, insert, inspect, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import CaseState
from worker.db.guard import ConcurrentChange, flush_guarded
from worker.db.models import AuditEvent, Case, Reporter
from worker.ledger.audit_keys import Keyring, keyring
from worker.ledger.written import note as note_written

if TYPE_CHECKING:
    from worker.ledger.audit_anchor import Anchor

try:  # OpenSSL's HMAC in one C call; `hmac.digest` wraps it in Python (three calls an event)
    from _hashlib import hmac_digest as _hmac
except ImportError:  # pragma: no cover - a Python built without OpenSSL
    from hmac import digest as _hmac  # type: ignore[assignment]

GENESIS = "0" * 64


_ENCODING_VERSION = "closeloop-audit-v2"


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
    key_id: str | None,
) -> bytes:
    """The bytes that are sealed: a fixed-order JSON array, object keys sorted, UTF-8,
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
        key_id,
    ]
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def chain_hash(key: bytes, **fields: Any) -> str:
    """An event's seal: HMAC-SHA256 under `key` of its canonical bytes, in hex."""
    return _hmac(key, canonical(**fields), "sha256").hex()


def _seal(fields: dict[str, Any]) -> str:
    """Seal a new event with the current key, recording which key that is."""
    ring = keyring()
    fields["key_id"] = ring.current_id
    return _hmac(ring.current, canonical(**fields), "sha256").hex()


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
    digest = _seal(fields)
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
    return _written(event_row)


_NEW_EVENT = AuditEvent._sa_class_manager.new_instance  # type: ignore[attr-defined]


def _written(row: dict[str, Any]) -> AuditEvent:
    """What was written, as an event to read (never to add to a session: it is written). Its
    values go straight into the instance's dict: the ORM's constructor sets each attribute
    through its instrumentation, some hundred Python calls an event on the busiest path."""
    event: AuditEvent = _NEW_EVENT()
    event.__dict__.update(row)
    return event


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
    digest = _seal(fields)
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
    """Insert a new case in the state `worker.ledger.lifecycle.open_case` (the one caller) gave it,
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
    digest = _seal(fields)
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
    anchored: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    # Each sound chain's head (case, seq, hash), if asked for: what an anchor keeps.
    heads: list[tuple[str, int, str]] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# Events first, their case row joined: a chain whose case row is gone is still read.
_EVENT_COLUMNS = (
    AuditEvent.case_id,
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
    AuditEvent.key_id,
    AuditEvent.hash,
    Case.id,
    Case.audit_seq,
    Case.audit_head,
)


def _streamed(connection: Any, query: Any, batch: int) -> Iterator[Any]:
    result = connection.execution_options(stream_results=True, yield_per=batch).execute(query)
    for partition in result.partitions():
        yield from partition


class _Chain:
    """What verification holds of the case being read: its head so far and its case row."""

    __slots__ = ("broken", "case_id", "has_row", "hash", "head_hash", "head_seq", "seq")

    def __init__(self, case_id: str, has_row: bool, head_seq: int, head_hash: str) -> None:
        self.case_id, self.has_row = case_id, has_row
        self.head_seq, self.head_hash = head_seq, head_hash
        self.seq, self.hash, self.broken = 0, GENESIS, False


def verify(
    engine: Engine,
    case_id: str | None = None,
    batch: int = 10_000,
    *,
    keys: Keyring | None = None,
    anchor: Anchor | None = None,
    collect_heads: bool = False,
) -> VerifyReport:
    """Check every chain (or one case's), starting from the events. Streams: memory grows with
    neither events nor cases (except the anchor's heads, and the heads collected if asked).

    Events come ordered by case and sequence, each with its case row if there is one. For each
    chain only the last hash is kept; the first broken event of a chain is reported and the rest
    of it skipped. Then: chains whose case row is gone, case rows whose head is not the chain's
    end, case rows without any event, and, against `anchor`, anchored chains cut short, changed
    or gone.
    """
    keys = keys or keyring()
    report = VerifyReport(heads=[] if collect_heads else None)
    started = time.perf_counter()
    problems = report.problems
    anchored = dict(anchor.heads) if anchor is not None else {}
    if case_id is not None:
        anchored = {case_id: anchored[case_id]} if case_id in anchored else {}
    report.anchored = len(anchored)
    events_query = (
        select(*_EVENT_COLUMNS)
        .select_from(AuditEvent)
        .outerjoin(Case, Case.id == AuditEvent.case_id)
        .order_by(AuditEvent.case_id, AuditEvent.seq)
    )
    bare_cases = (
        select(Case.id, Case.audit_seq)
        .where(~exists().where(AuditEvent.case_id == Case.id))
        .order_by(Case.id)
    )
    if case_id is not None:
        events_query = events_query.where(AuditEvent.case_id == case_id)
        bare_cases = bare_cases.where(Case.id == case_id)
    key_by_id = keys.keys
    chain: _Chain | None = None
    last_key_id: str | None = None
    key = b""
    with engine.connect() as connection:
        for row in _streamed(connection, events_query, batch):
            (cid, seq, at, kind, actor, action, frm, to, data, rules, prev, kid, digest,
             row_id, case_seq, case_head) = row  # fmt: skip
            if chain is None or cid != chain.case_id:
                if chain is not None:
                    _end_chain(report, chain, anchored)
                chain = _Chain(cid, row_id is not None, case_seq or 0, case_head or GENESIS)
                report.cases += 1
            report.events += 1
            if chain.broken:
                continue
            if kid != last_key_id:
                last_key_id, key = kid, key_by_id.get(kid, b"") if kid is not None else b""
            if seq != chain.seq + 1:
                what = (
                    f"expected sequence {chain.seq + 1}, found {seq}: events missing or reordered"
                )
            elif prev != chain.hash:
                what = "previous-hash link broken: an earlier event was removed, swapped or altered"
            elif not key:
                what = (
                    "sealed without a key: forged, or written before audit keys"
                    if kid is None
                    else f"sealed with key {kid!r}, which is not among the audit keys: add it "
                    "back to CLOSELOOP_AUDIT_KEYS (old keys stay for verification)"
                )
            elif (
                _hmac(
                    key,
                    canonical(cid, seq, at, kind, actor, action, frm, to, data, rules, prev, kid),
                    "sha256",
                ).hex()
                != digest
            ):
                what = "content does not match its MAC: the event was altered or forged"
            elif cid in anchored and anchored[cid][0] == seq and anchored[cid][1] != digest:
                what = "differs from the anchored event: the chain was rewritten"
            else:
                chain.seq, chain.hash = seq, digest
                continue
            problems.append(Problem(cid, seq, what))
            chain.broken = True
        if chain is not None:
            _end_chain(report, chain, anchored)
        for cid, recorded in _streamed(connection, bare_cases, batch):
            report.cases += 1
            anchored.pop(cid, None)
            problems.append(
                Problem(
                    cid,
                    None,
                    f"the case has no events (it records {recorded}): its chain was removed",
                )
            )
    for cid, (seq, _) in anchored.items():
        problems.append(
            Problem(
                cid,
                None,
                f"anchored with {seq} events, now gone: its events and case row were removed",
            )
        )
    report.seconds = time.perf_counter() - started
    return report


def _end_chain(report: VerifyReport, chain: _Chain, anchored: dict[str, tuple[int, str]]) -> None:
    mark = anchored.pop(chain.case_id, None)
    if chain.broken:
        return
    what: str | None = None
    if not chain.has_row:
        what = (
            f"no case row: the case was deleted and its chain of {chain.seq} events left orphaned"
        )
    elif (chain.seq, chain.hash) != (chain.head_seq, chain.head_hash):
        what = (
            f"the case records {chain.head_seq} events but the chain ends at {chain.seq}: "
            "events at the end were removed or the head was altered"
        )
    elif mark is not None and chain.seq < mark[0]:
        what = (
            f"anchored at {mark[0]} events but the chain ends at {chain.seq}: events were cut "
            "from its end and the head moved back"
        )
    if what is not None:
        report.problems.append(Problem(chain.case_id, None, what))
    elif report.heads is not None:
        report.heads.append((chain.case_id, chain.seq, chain.hash))
