"""metrics indexes: the window's cases, the backlog, lead tasks and callbacks by time

Covering indexes (INCLUDE, PostgreSQL) let `GET /v1/metrics` answer from the indexes alone
(index-only scans) on a million cases; SQLite gets the same keys and conditions without the
included columns. See the README's Benchmarks.

Revision ID: 0007
Revises: 0005 (0006 is not on main yet: chain it after whichever lands first)
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "state IN ('received', 'triaged', 'dispatched', 'accepted', 'in_progress')"
DONE = "state IN ('resolved', 'closed')"
GROUPS = ["state", "lead_department", "district", "category"]


def _index(name: str, table: str, key: str, include: list[str], where: str | None = None) -> None:
    condition: dict[str, Any] = {}
    if where is not None:
        condition = {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}
    op.create_index(name, table, [key], postgresql_include=include, **condition)


def upgrade() -> None:
    _index(
        "ix_cases_metrics_window", "cases", "received_at",
        ["id", *GROUPS, "closed_at", "resolved_at", "resolve_due_at"],
    )  # fmt: skip
    _index(
        "ix_cases_metrics_open", "cases", "received_at",
        [*GROUPS, "acknowledge_due_at", "resolve_due_at"], OPEN,
    )  # fmt: skip
    _index(
        "ix_cases_metrics_resolved", "cases", "resolved_at",
        [*GROUPS, "received_at", "acknowledge_due_at", "resolve_due_at"], DONE,
    )  # fmt: skip
    _index(
        "ix_cases_metrics_merged", "cases", "received_at",
        ["merged_into_id", "category", "district"], "state = 'merged'",
    )  # fmt: skip
    _index(
        "ix_tasks_metrics_lead", "tasks", "created_at",
        ["case_id", "department", "acknowledged_at", "acknowledge_due_at"], "role = 'lead'",
    )  # fmt: skip
    _index("ix_callbacks_metrics", "callbacks", "recorded_at", ["case_id", "solved", "satisfied"])


def downgrade() -> None:
    for name, table in [
        ("ix_callbacks_metrics", "callbacks"),
        ("ix_tasks_metrics_lead", "tasks"),
        ("ix_cases_metrics_merged", "cases"),
        ("ix_cases_metrics_resolved", "cases"),
        ("ix_cases_metrics_open", "cases"),
        ("ix_cases_metrics_window", "cases"),
    ]:
        op.drop_index(name, table_name=table)
