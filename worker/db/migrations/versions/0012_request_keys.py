"""request keys: idempotency keys scoped to their caller with a fingerprint; token expiry

`cases.idempotency_key` is unique per scope (the token that sent it, or the intake queue)
instead of across every caller, and the filing's fingerprint is kept beside it. Keys filed
before scoping cannot be given the token that sent them: queue keys (`queue:...`) join the
queue's scope, the others a scope no caller has, so a retry after the upgrade files anew
rather than returning another caller's case. Progress reports' keys get `request_keys`.

Revision ID: 0012
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import worker.db.types

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_scope", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("request_fingerprint", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE cases SET idempotency_scope = CASE WHEN idempotency_key LIKE 'queue:%' "
        "THEN 'queue' ELSE 'before-scoping' END WHERE idempotency_key IS NOT NULL"
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_cases_idempotency_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_cases_idempotency_key", ["idempotency_scope", "idempotency_key"]
        )
    op.create_table(
        "request_keys",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", worker.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expires_at", worker.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    op.drop_table("request_keys")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_cases_idempotency_key", type_="unique")
        batch_op.create_unique_constraint("uq_cases_idempotency_key", ["idempotency_key"])
        batch_op.drop_column("request_fingerprint")
        batch_op.drop_column("idempotency_scope")
