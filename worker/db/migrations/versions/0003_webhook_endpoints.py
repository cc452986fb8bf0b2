"""webhook endpoints (410 disabled, circuit breaker); deliveries claimed by version, replayable

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import worker.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("disabled_at", worker.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("circuit_open_until", worker.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", worker.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("department"),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("attempts_before_replay", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("attempts_before_replay")
        batch.drop_column("version")
    op.drop_table("webhook_endpoints")
