"""Break the audit store on purpose, the way an intruder with database access would."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, text

from worker.db.models import AuditEvent
from worker.ledger.audit import canonical

GUARDED = ("audit_events", "cases")


@contextmanager
def triggers_disabled(engine: Engine) -> Iterator[Connection]:
    """A connection (as the tables' owner) on which the audit store's triggers are off; they
    are put back after."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            for table in GUARDED:
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            yield connection
            for table in GUARDED:
                connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        else:
            kept = connection.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                    "AND tbl_name IN ('audit_events', 'cases')"
                )
            ).all()
            for name, _ in kept:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
            yield connection
            for _, sql in kept:
                connection.execute(text(sql))


def sha256_seal(**fields: object) -> str:
    """What the chain held before keys: a plain, public SHA-256 anyone can recompute."""
    return hashlib.sha256(canonical(**fields)).hexdigest()  # type: ignore[arg-type]


_SEALED = (
    "case_id", "seq", "at", "actor_kind", "actor_id", "action", "from_state", "to_state",
    "data", "rules_version", "prev_hash", "key_id",
)  # fmt: skip


def events_of(connection: Connection, case_id: str) -> list[dict[str, Any]]:
    """A chain's events as typed values, the fields that are sealed only."""
    events: Table = AuditEvent.__table__  # type: ignore[assignment]
    rows = connection.execute(
        select(*(events.c[name] for name in _SEALED))
        .where(events.c.case_id == case_id)
        .order_by(events.c.seq)
    ).mappings()
    return [dict(row) for row in rows]


def last_hash(connection: Connection, case_id: str) -> str:
    found = connection.scalar(
        text("SELECT hash FROM audit_events WHERE case_id = :c ORDER BY seq DESC LIMIT 1"),
        {"c": case_id},
    )
    return str(found)
