"""Idempotency keys: whose they are, and what they were first sent with.

A key is the caller's own (IETF `Idempotency-Key` draft): the API scopes it to the token
that sent it, the intake queue to the queue, so two clients choosing the same key never
meet. With the key the store keeps a fingerprint of the request (SHA-256 of what it asked,
in a canonical form): a repeat with the same fingerprint is a retry and answers like the
first; the same key with another request is a client's mistake, refused with `KeyReused`
rather than answered with the first request's result (which would drop the second's data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.clock import now
from worker.db.models import RequestKey

QUEUE_SCOPE = "queue"


@dataclass(frozen=True)
class Key:
    """An `Idempotency-Key` and whose it is."""

    scope: str
    value: str

    @classmethod
    def of_token(cls, token_id: str, value: str | None) -> Key | None:
        return cls(f"token:{token_id}", value) if value else None


class KeyReused(Exception):
    """The key came before with a different request; the message says what to do."""

    def __init__(self, key: Key, what: str) -> None:
        self.key = key
        super().__init__(
            f"Idempotency-Key {key.value!r} was already used for a different {what}: send a "
            "new key with a new request (a retry must repeat the first request exactly)"
        )


def fingerprint(request: Any) -> str:
    """SHA-256 of `request` (JSON-able) in a canonical form: key order does not matter."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


_KEYS: Table = RequestKey.__table__  # type: ignore[assignment]


def claim(session: Session, key: Key, print_: str, what: str, *, task_id: str) -> bool:
    """Record `key` for this request in the caller's transaction: True when it is new (go
    on and do the work), False when it is a retry of the request that holds it.

    Raises `KeyReused` when the key holds another request. Of two requests racing with one
    key, the second's insert waits for the first's transaction and then finds its row."""
    connection = session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    inserted = connection.execute(
        dialect.insert(_KEYS)
        .values(
            scope=key.scope, key=key.value, fingerprint=print_, task_id=task_id, created_at=now()
        )
        .on_conflict_do_nothing()
        .returning(_KEYS.c.key)
    ).first()
    if inserted is not None:
        return True
    held = connection.execute(
        select(_KEYS.c.fingerprint).where(_KEYS.c.scope == key.scope, _KEYS.c.key == key.value)
    ).scalar_one()
    if held != print_:
        raise KeyReused(key, what)
    return False
