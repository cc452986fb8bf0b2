"""Bearer tokens and roles.

A token is shown once, when it is made; the store keeps only its SHA-256, so a copy of the
database lets nobody call the API. Tokens carry 256 random bits, which is why a plain hash is
enough here (a slow password hash protects guessable secrets, and these are not guessable).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from worker.clock import now
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.db.models import ApiToken

TOKEN_PREFIX = "cl_"  # noqa: S105 - a marker that makes leaked tokens easy to scan for
# How stale `last_used_at` may get: writing it on every request would cost a write per call.
LAST_USED_PRECISION = timedelta(minutes=1)
_DEPARTMENT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TOKEN_SHAPE = re.compile(r"^cl_[A-Za-z0-9_-]{20,100}$")


class Role(StrEnum):
    hotline = "hotline"
    monitor = "monitor"
    department = "department"
    supervisor = "supervisor"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id and name, its role, and its department if it has one."""

    token_id: str
    name: str
    role: Role
    department: str | None = None

    def has_role(self, allowed: frozenset[Role]) -> bool:
        # An admin may do everything a supervisor may.
        return self.role in allowed or (self.role is Role.admin and Role.supervisor in allowed)

    @property
    def actor(self) -> Actor:
        """How this caller appears in the audit store: a department by its id, others by name."""
        return Actor(kind=ActorKind(self.role.value), id=self.department or self.name)


@dataclass(frozen=True)
class NewToken:
    token: str
    record: ApiToken


class TokenError(ValueError):
    """A token cannot be made as asked (a department role without a department, say)."""


class TokenExpired(Exception):
    """A real token past its expiry: refused like a revoked one, but the caller is told why
    (the fix is a new token, not a typo hunt)."""

    def __init__(self, expired_at: datetime) -> None:
        self.expired_at = expired_at
        super().__init__(
            f"The token expired at {expired_at.strftime('%Y-%m-%d %H:%M:%S UTC')}; ask for a "
            "new one (`closeloop token create`)."
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    role: Role,
    *,
    name: str | None = None,
    department: str | None = None,
    known_departments: Collection[str] | None = None,
    expires_in: timedelta | None = None,
) -> NewToken:
    """Make a token; the caller shows `NewToken.token` once and never again.

    With `known_departments` (the routing rules' ids), a department token must name one.
    With `expires_in`, it is refused from that long after now on; without, it lasts until
    revoked.
    """
    department = check_department(role, department, known_departments)
    if expires_in is not None and expires_in <= timedelta(0):
        raise TokenError("a token's lifetime must be longer than zero (e.g. --expires 90d)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    made_at = now()
    record = ApiToken(
        name=name or department or role.value,
        role=role.value,
        department=department,
        token_hash=hash_token(token),
        created_at=made_at,
        expires_at=made_at + expires_in if expires_in is not None else None,
    )
    session.add(record)
    session.flush()
    return NewToken(token, record)


def check_department(
    role: Role, department: str | None, known: Collection[str] | None = None
) -> str | None:
    if role is not Role.department:
        if department is not None:
            raise TokenError(f"only a department token names a department, not a {role} token")
        return None
    if not department:
        raise TokenError("a department token must name its department (--department ID)")
    if not _DEPARTMENT_ID.match(department):
        raise TokenError(
            f"'{department}' is not a department id: lower-case letters, digits, '_', '.', '-'"
        )
    if known is not None and department not in known:
        raise TokenError(
            f"the routing rules have no department '{department}' "
            f"(they have: {', '.join(sorted(known))})"
        )
    return department


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke_token(session: Session, token_id: str) -> ApiToken | None:
    """Revoke a token; None if there is no such token. Revoking twice keeps the first time."""
    record = session.get(ApiToken, token_id)
    if record is not None and record.revoked_at is None:
        record.revoked_at = now()
    return record


_TOKENS: Table = ApiToken.__table__  # type: ignore[assignment]
# Built once (every API call runs it): building a statement costs more than sending it.
_FIND = select(
    *(
        _TOKENS.c[name]
        for name in (
            "id",
            "name",
            "role",
            "department",
            "token_hash",
            "revoked_at",
            "last_used_at",
            "expires_at",
        )
    )
).where(_TOKENS.c.token_hash == bindparam("digest"))


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal a presented token stands for; None if it is unknown, forged or revoked.
    Raises `TokenExpired` for a token past its expiry."""
    if not _TOKEN_SHAPE.match(token):
        return None
    digest = hash_token(token)
    record = session.connection().execute(_FIND, {"digest": digest}).one_or_none()
    # The index lookup already matched; the constant-time compare keeps the decision itself
    # free of early exits, whatever the database's comparison does.
    if record is None or not hmac.compare_digest(record.token_hash, digest):
        return None
    if record.revoked_at is not None:
        return None
    if record.expires_at is not None and record.expires_at <= now():
        raise TokenExpired(record.expires_at)
    _note_use(session, record)
    return Principal(
        token_id=record.id, name=record.name, role=Role(record.role), department=record.department
    )


def _note_use(session: Session, record: Row[Any]) -> None:
    moment = now()
    if record.last_used_at is not None and moment - record.last_used_at < LAST_USED_PRECISION:
        return
    # Conditional, so that many requests racing past the check above still write at most once.
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == record.id)
        .where(
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at < moment - LAST_USED_PRECISION,
            )
        )
        .values(last_used_at=moment)
        .execution_options(synchronize_session=False)
    )
