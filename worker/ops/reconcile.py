"""Reconciliation: is every accepted incident a routed, audited case, with its tasks and
their deliveries? The report counts what exists and names what is missing.

Missing means:
- a case still waiting for a stage (received or triaged) longer than the pipeline ever takes;
- a case past dispatch without a lead task in its current round;
- a task without the delivery that assigned it (`task.assigned`, or `case.reopened`);
- a delivery not delivered: dead, or late (still waiting longer than `grace` past the time
  it was due: its next attempt, or the end of its claim), with how late it is;
- an outbox message never published after the relay should have sent it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from worker.clock import now
from worker.contracts.enums import CaseState, TaskRole
from worker.db.models import Case, Delivery, OutboxMessage, Task
from worker.ledger.deliveries import WAITING

PAST_DISPATCH = [
    s.value
    for s in (
        CaseState.dispatched,
        CaseState.accepted,
        CaseState.in_progress,
        CaseState.resolved,
        CaseState.closed,
    )
]

# The webhooks that hand a department a new task: a reopened case's lead learns of its new
# task from `case.reopened`, everyone else from `task.assigned`.
ASSIGNING_EVENTS = ("task.assigned", "case.reopened")


@dataclass(frozen=True)
class LateDelivery:
    id: str
    department: str
    state: str
    due_at: str
    late_seconds: int


@dataclass
class Report:
    cases: int = 0
    cases_by_state: dict[str, int] = field(default_factory=dict)
    tasks: int = 0
    deliveries: int = 0
    deliveries_by_state: dict[str, int] = field(default_factory=dict)
    stalled_cases: list[str] = field(default_factory=list)
    cases_without_lead_task: list[str] = field(default_factory=list)
    tasks_without_delivery: list[str] = field(default_factory=list)
    dead_deliveries: list[str] = field(default_factory=list)
    late_deliveries: list[LateDelivery] = field(default_factory=list)
    unpublished_messages: int = 0

    @property
    def missing(self) -> int:
        return (
            len(self.stalled_cases)
            + len(self.cases_without_lead_task)
            + len(self.tasks_without_delivery)
            + len(self.dead_deliveries)
            + len(self.late_deliveries)
            + self.unpublished_messages
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "missing": self.missing}


def reconcile(session: Session, grace: timedelta = timedelta(minutes=2)) -> Report:
    """Count everything; list what is missing (older than `grace`, to let work in flight land)."""
    cutoff = now() - grace
    report = Report()
    report.cases_by_state = _counts(session, Case.state)
    report.cases = sum(report.cases_by_state.values())
    report.tasks = session.scalar(select(func.count()).select_from(Task)) or 0
    report.deliveries_by_state = _counts(session, Delivery.state)
    report.deliveries = sum(report.deliveries_by_state.values())
    report.stalled_cases = _ids(
        session,
        select(Case.id).where(
            Case.state.in_([CaseState.received.value, CaseState.triaged.value]),
            Case.updated_at < cutoff,
        ),
    )
    lead = aliased(Task)
    report.cases_without_lead_task = _ids(
        session,
        select(Case.id).where(
            Case.state.in_(PAST_DISPATCH),
            ~exists().where(
                and_(
                    lead.case_id == Case.id,
                    lead.role == TaskRole.lead.value,
                    lead.dispatch_round == Case.dispatch_round,
                )
            ),
        ),
    )
    report.tasks_without_delivery = _ids(
        session,
        select(Task.id).where(
            Task.created_at < cutoff,
            ~exists().where(
                and_(Delivery.task_id == Task.id, Delivery.event_type.in_(ASSIGNING_EVENTS))
            ),
        ),
    )
    report.dead_deliveries = _ids(session, select(Delivery.id).where(Delivery.state == "dead"))
    report.late_deliveries = _late_deliveries(session, cutoff)
    report.unpublished_messages = (
        session.scalar(
            select(func.count()).where(
                OutboxMessage.published_at.is_(None), OutboxMessage.created_at < cutoff
            )
        )
        or 0
    )
    return report


def _late_deliveries(session: Session, cutoff: datetime, limit: int = 1000) -> list[LateDelivery]:
    # A waiting delivery's `next_attempt_at` is when it is due (pending) or when its claim
    # ends (queued, sending): past it by more than the grace, nothing is moving it.
    at = now()
    rows = session.execute(
        select(Delivery.id, Delivery.department, Delivery.state, Delivery.next_attempt_at)
        .where(Delivery.state.in_(WAITING), Delivery.next_attempt_at < cutoff)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    ).all()
    return [
        LateDelivery(
            id=str(id_),
            department=str(department),
            state=str(state),
            due_at=due.isoformat(),
            late_seconds=int((at - due).total_seconds()),
        )
        for id_, department, state, due in rows
        if due is not None
    ]


def _counts(session: Session, column: object) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column)).all()  # type: ignore[call-overload]
    return {str(state): int(count) for state, count in rows}


def _ids(session: Session, query: object, limit: int = 1000) -> list[str]:
    return [str(i) for i in session.scalars(query.limit(limit))]  # type: ignore[attr-defined]
