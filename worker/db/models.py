"""The store. The database is the truth; the queue only carries work.

States are written only by `worker.ledger.lifecycle` (cases) and `worker.tasks_lifecycle` (tasks),
each of which appends the audit event in the same transaction. `version` columns are
SQLAlchemy's optimistic lock: a flush that finds the row changed since it was read raises.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from worker.clock import now
from worker.db.types import BigId, UTCDateTime
from worker.escalation import next_due


def new_id() -> str:
    return str(uuid.uuid4())


def _metrics_index(name: str, key: str, include: list[str], where: str | None = None) -> Index:
    """Covering on PostgreSQL (index-only scans for the metrics); the same key on SQLite."""
    condition: dict[str, Any] = {}
    if where is not None:
        condition = {"postgresql_where": text(where), "sqlite_where": text(where)}
    return Index(name, key, postgresql_include=include, **condition)


def metrics_case_indexes() -> list[Index]:
    groups = ["state", "lead_department", "district", "category"]
    open_states = "state IN ('received', 'triaged', 'dispatched', 'accepted', 'in_progress')"
    return [
        _metrics_index(
            "ix_cases_metrics_window",
            "received_at",
            ["id", *groups, "closed_at", "resolved_at", "resolve_due_at"],
        ),
        _metrics_index(
            "ix_cases_metrics_open",
            "received_at",
            [*groups, "acknowledge_due_at", "resolve_due_at"],
            open_states,
        ),
        _metrics_index(
            "ix_cases_metrics_resolved",
            "resolved_at",
            [*groups, "received_at", "acknowledge_due_at", "resolve_due_at"],
            "state IN ('resolved', 'closed')",
        ),
        _metrics_index(
            "ix_cases_metrics_merged",
            "received_at",
            ["merged_into_id", "category", "district"],
            "state = 'merged'",
        ),
    ]


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_cases_source_external_id"),
        # A key is the client's (its token's), so two clients' keys never meet.
        UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_cases_idempotency_key"),
        Index("ix_cases_state", "state"),
        Index("ix_cases_received_at", "received_at"),
        Index("ix_cases_category_received", "category", "received_at"),
        Index("ix_cases_district_received", "district", "received_at"),
        Index("ix_cases_lead_received", "lead_department", "received_at"),
        # The deadline scan's two questions: which open cases have an escalation step due,
        # and which have passed their resolve deadline without being flagged yet.
        Index("ix_cases_escalation_due", "state", "next_escalation_at"),
        Index("ix_cases_resolve_due", "state", "overdue", "resolve_due_at"),
        # The supervisors' metrics (see worker/metrics/queries.py and migration 0007).
        *metrics_case_indexes(),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    state: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # Whose key: "token:<id>" from the API, "queue" from the intake queue.
    idempotency_scope: Mapped[str | None] = mapped_column(String(80))
    # SHA-256 of the filing as the key first came with it: a repeat must match it.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(500))
    district: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    priority_hint: Mapped[str | None] = mapped_column(String(10))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    lead_department: Mapped[str | None] = mapped_column(String(64))
    rules_version: Mapped[str | None] = mapped_column(String(80))
    route_path: Mapped[list[Any]] = mapped_column(default=list)
    acknowledge_due_at: Mapped[datetime | None]
    resolve_due_at: Mapped[datetime | None]
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    reporter_count: Mapped[int] = mapped_column(Integer, default=1)
    merged_into_id: Mapped[str | None] = mapped_column(ForeignKey("cases.id"))
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    # Which routing round the live tasks belong to: 1 at first dispatch, +1 at each re-dispatch.
    dispatch_round: Mapped[int] = mapped_column(Integer, default=0)
    # The route's escalation chain as decided at dispatch (levels, deadlines, who to tell).
    escalation_plan: Mapped[list[Any]] = mapped_column(default=list)
    # When the earliest step of the plan not yet fired or passed over comes due; kept in step
    # with the plan by `_follow_plan` wherever the plan is written, so the scan is one
    # indexed range instead of a read of every open case's plan.
    next_escalation_at: Mapped[datetime | None]
    share_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    dispatched_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(40))
    callback_due_at: Mapped[datetime | None]
    # The audit chain's head as last written: lets `audit verify` notice a removed last event.
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str | None] = mapped_column(String(64))

    reporters: Mapped[list[Reporter]] = relationship(back_populates="case", order_by="Reporter.id")
    tasks: Mapped[list[Task]] = relationship(back_populates="case", order_by="Task.created_at")

    __mapper_args__ = {"version_id_col": version}

    @validates("escalation_plan")
    def _follow_plan(self, _key: str, plan: list[Any]) -> list[Any]:
        self.next_escalation_at = next_due(plan)
        return plan


class Reporter(Base):
    """A citizen's contact. Personal data: never logged, shared only where the route says."""

    __tablename__ = "reporters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=now)

    case: Mapped[Case] = relationship(back_populates="reporters")


class Callback(Base):
    """The citizen's answer when the hotline calls back after a case was resolved."""

    __tablename__ = "callbacks"
    __table_args__ = (
        Index("ix_callbacks_case", "case_id", "recorded_at"),
        _metrics_index("ix_callbacks_metrics", "recorded_at", ["case_id", "solved", "satisfied"]),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    # None when the citizen could not be reached within the callback window.
    solved: Mapped[bool | None] = mapped_column(Boolean)
    satisfied: Mapped[bool | None] = mapped_column(Boolean)
    comment: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(20))
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(default=now)


class Task(Base):
    """One department's assignment on a case: the lead, or an assisting department."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint(
            "case_id", "department", "dispatch_round", name="uq_tasks_case_dept_round"
        ),
        Index("ix_tasks_department_state", "department", "state"),
        Index("ix_tasks_ack_due", "state", "acknowledge_due_at"),
        Index("ix_tasks_reminder_due", "state", "reminded_at", "acknowledge_due_at"),
        _metrics_index(
            "ix_tasks_metrics_lead",
            "created_at",
            ["case_id", "department", "acknowledged_at", "acknowledge_due_at"],
            "role = 'lead'",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    department: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    dispatch_round: Mapped[int] = mapped_column(Integer, default=1)
    acknowledge_due_at: Mapped[datetime | None]
    resolve_due_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # Set when the department was reminded of a passed acknowledge deadline (once per task).
    reminded_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    case: Mapped[Case] = relationship(back_populates="tasks")

    __mapper_args__ = {"version_id_col": version}


class AuditEvent(Base):
    """Append-only: triggers refuse UPDATE, DELETE and an INSERT that does not extend its
    chain. See `worker.ledger.audit`."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_audit_case_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rules_version: Mapped[str | None] = mapped_column(String(80))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Which audit key sealed `hash` (see `worker.ledger.audit_keys`); NULL only on events from
    # before keys, which verification reports as unkeyed.
    key_id: Mapped[str | None] = mapped_column(String(40))

    # Never read; it is here so that where an event is an ORM object (written in a savepoint,
    # see `worker.ledger.audit.append_event`), one flush writes the case row (whose version check
    # tells a concurrent writer apart) before the event row. Without it the unit of work has
    # no order between the two tables and would insert the event first.
    case: Mapped[Case] = relationship(
        primaryjoin="foreign(AuditEvent.case_id) == Case.id", lazy="raise"
    )


class OutboxMessage(Base):
    """A message to publish once the transaction that wrote it commits (transactional outbox)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    case_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=now)
    published_at: Mapped[datetime | None]
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)


class Delivery(Base):
    """One webhook message to one department; its `webhook_id` is stable across every retry.

    `state`: pending (waiting for `next_attempt_at`), queued (a send task is on its way),
    sending (claimed by one worker), delivered, dead. While queued or sending,
    `next_attempt_at` is the end of that claim: past it, the delivery is due again, so a
    worker that died mid-send never strands it. See `worker.webhooks`.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_deliveries_dedupe_key"),
        UniqueConstraint("webhook_id", name="uq_deliveries_webhook_id"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"))
    department: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    version: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    delivered_at: Mapped[datetime | None]
    # Attempts made before the latest replay: the schedule starts over from there.
    attempts_before_replay: Mapped[int] = mapped_column(Integer, default=0)

    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", order_by="DeliveryAttempt.attempt_no"
    )

    # Two workers claiming the same delivery: the second one's write finds the version moved.
    __mapper_args__ = {"version_id_col": version}


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=now)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)

    delivery: Mapped[Delivery] = relationship(back_populates="attempt_log")


class WebhookEndpoint(Base):
    """What closeloop knows of a department's webhook endpoint: whether it answered 410 Gone
    (disabled), and its circuit breaker. A new URL in the rules starts it afresh."""

    __tablename__ = "webhook_endpoints"

    department: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Set: the circuit is open until then; past it, one probe may go (half-open).
    circuit_open_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class DeadLetter(Base):
    """Work that could not be done, kept with its reason: never a silent drop."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # readable: undecodable bytes escaped, no NUL
    # The message exactly as it came, when it came as bytes (whatever they were).
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)
    handled_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once at creation."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    department: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: never


class RequestKey(Base):
    """An `Idempotency-Key` a caller sent with a request other than a filing (a department's
    progress report), with what it acted on and the fingerprint of what it asked; written in
    the transaction of the request's effect, so the key exists exactly when the effect does."""

    __tablename__ = "request_keys"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=now)
