"""the audit store proves what it claims: events carry their key id; the database refuses
deleting or truncating cases and an event that does not extend its chain's head; the service's
role (CLOSELOOP_DATABASE_APP_ROLE) gets its rights without owning anything

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64

# Only constants are put into these statements (the genesis hash; the role name, checked
# against a pattern by the settings).
_PG_EXTENDS_CHAIN = f"""
CREATE OR REPLACE FUNCTION closeloop_audit_extends_chain() RETURNS trigger AS $$
DECLARE
    last_seq integer;
    last_hash varchar(64);
BEGIN
    -- One backward step on uq_audit_case_seq: the chain's head as stored.
    SELECT seq, hash INTO last_seq, last_hash FROM audit_events
        WHERE case_id = NEW.case_id ORDER BY seq DESC LIMIT 1;
    IF NEW.seq IS DISTINCT FROM coalesce(last_seq, 0) + 1
       OR NEW.prev_hash IS DISTINCT FROM coalesce(last_hash, '{GENESIS}') THEN
        RAISE EXCEPTION 'audit_events: event % of case % does not extend its chain (head is %)',
            NEW.seq, NEW.case_id, coalesce(last_seq, 0)
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""  # noqa: S608

_PG_KEEP_CASES = """
CREATE OR REPLACE FUNCTION closeloop_cases_kept() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'cases are kept for the audit store: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""

# CREATE ROLE has no IF NOT EXISTS; roles are cluster-wide and several databases may be
# migrated at once (tests, replicas), so the loser of a race is told apart by its error.
_PG_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        BEGIN
            CREATE ROLE {role} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$
"""

_SQLITE_EXTENDS_CHAIN = f"""
CREATE TRIGGER audit_events_extend_chain BEFORE INSERT ON audit_events
WHEN NEW.seq IS NOT coalesce(
        (SELECT seq FROM audit_events WHERE case_id = NEW.case_id ORDER BY seq DESC LIMIT 1), 0
     ) + 1
  OR NEW.prev_hash IS NOT coalesce(
        (SELECT hash FROM audit_events WHERE case_id = NEW.case_id ORDER BY seq DESC LIMIT 1),
        '{GENESIS}'
     )
BEGIN
    SELECT RAISE(ABORT, 'audit_events: the event does not extend its chain');
END
"""  # noqa: S608


def _role() -> str:
    from worker.config import Settings

    return Settings().database_app_role


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("key_id", sa.String(length=40), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        op.execute(_SQLITE_EXTENDS_CHAIN)
        op.execute(
            "CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases "
            "BEGIN SELECT RAISE(ABORT, 'cases are kept for the audit store: DELETE refused'); END"
        )
        return
    op.execute(_PG_EXTENDS_CHAIN)
    op.execute(
        "CREATE TRIGGER audit_events_extend_chain BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION closeloop_audit_extends_chain()"
    )
    op.execute(_PG_KEEP_CASES)
    op.execute(
        "CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases "
        "FOR EACH ROW EXECUTE FUNCTION closeloop_cases_kept()"
    )
    op.execute(
        "CREATE TRIGGER cases_no_truncate BEFORE TRUNCATE ON cases "
        "FOR EACH STATEMENT EXECUTE FUNCTION closeloop_cases_kept()"
    )
    _grant_app_role(_role())


def _grant_app_role(role: str) -> None:
    """The service's rights: read and write rows, nothing more. Not the owner, so it can neither
    disable a trigger nor alter a table; no TRUNCATE anywhere; no UPDATE or DELETE of events,
    no DELETE of cases (the triggers say so too, but a right never given needs no trigger)."""
    op.execute(_PG_ROLE.format(role=role))
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    op.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    op.execute(f"REVOKE UPDATE, DELETE ON audit_events, alembic_version FROM {role}")
    op.execute(f"REVOKE INSERT ON alembic_version FROM {role}")
    op.execute(f"REVOKE DELETE ON cases FROM {role}")
    # Tables later migrations create (run by this same owner) are the service's to use too.
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        role = _role()
        op.execute(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {role}"
        )
        op.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM {role}"
        )
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
        # The role itself stays: it is cluster-wide, other databases may still grant to it.
        op.execute("DROP TRIGGER IF EXISTS cases_no_truncate ON cases")
        op.execute("DROP TRIGGER IF EXISTS cases_no_delete ON cases")
        op.execute("DROP TRIGGER IF EXISTS audit_events_extend_chain ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS closeloop_cases_kept()")
        op.execute("DROP FUNCTION IF EXISTS closeloop_audit_extends_chain()")
    else:
        op.execute("DROP TRIGGER IF EXISTS cases_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_events_extend_chain")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("key_id")
