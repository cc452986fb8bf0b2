"""Optimistic concurrency: turn the database's "someone else got there first" into one error."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError


class ConcurrentChange(Exception):
    """Someone else changed the case (or task) between our read and our write."""

    def __init__(self, kind: str, entity_id: str) -> None:
        super().__init__(
            f"{kind} {entity_id} was changed by someone else meanwhile; reload it and try again"
        )
        self.kind, self.entity_id = kind, entity_id


# Unique keys whose violation means a concurrent writer, not bad input.
_RACE_CONSTRAINTS = ("uq_audit_case_seq",)


def flush_guarded(session: Session, kind: str, entity_id: str) -> None:
    try:
        session.flush()
    except StaleDataError as error:
        raise ConcurrentChange(kind, entity_id) from error
    except IntegrityError as error:
        if any(name in str(error.orig) for name in _RACE_CONSTRAINTS):
            raise ConcurrentChange(kind, entity_id) from error
        raise
