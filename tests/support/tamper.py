"""Break the audit store on purpose, the way an intruder with database access would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text


@contextmanager
def triggers_disabled(engine: Engine) -> Iterator[Connection]:
    """A connection on which the append-only triggers are off; they are put back after."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            yield connection
            connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
            connection.execute(text("DROP TRIGGER audit_events_no_delete"))
            yield connection
            for verb in ("UPDATE", "DELETE"):
                connection.execute(
                    text(
                        f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} "
                        "ON audit_events BEGIN SELECT RAISE(ABORT, 'append-only'); END"
                    )
                )
