"""deadline watch: when a case's next escalation step is due, when a task was reminded

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import worker.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "next_escalation_at", worker.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index(
            "ix_cases_escalation_due", ["state", "next_escalation_at"], unique=False
        )
        batch_op.create_index(
            "ix_cases_resolve_due", ["state", "overdue", "resolve_due_at"], unique=False
        )

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reminded_at", worker.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_tasks_reminder_due",
            ["state", "reminded_at", "acknowledge_due_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_reminder_due")
        batch_op.drop_column("reminded_at")

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_resolve_due")
        batch_op.drop_index("ix_cases_escalation_due")
        batch_op.drop_column("next_escalation_at")
