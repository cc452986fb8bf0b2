"""A stored case as the API shows it: `CaseOut`, its timeline read from the audit store.

Reporter contact details are not part of it: they are personal data, and the case view goes
to departments too.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from worker.contracts.audit import Actor, AuditEventOut
from worker.contracts.case import CaseOut, TaskOut
from worker.contracts.enums import ActorKind
from worker.contracts.incident import Location
from worker.db.models import AuditEvent, Case, Task
from worker.ledger.audit import timeline
from worker.ledger.lifecycle import LIVE_TASK_STATES


def case_out(session: Session, case: Case) -> CaseOut:
    return CaseOut(
        id=case.id,
        state=case.state,
        source=case.source,
        external_id=case.external_id,
        category=case.category,
        title=case.title,
        description=case.description,
        location=Location(
            latitude=case.latitude,
            longitude=case.longitude,
            address=case.address,
            district=case.district,
            grid=case.grid,
        ),
        priority=case.priority,
        received_at=case.received_at,
        occurred_at=case.occurred_at,
        lead_department=case.lead_department,
        departments=live_departments(case.tasks),
        acknowledge_due_at=case.acknowledge_due_at,
        resolve_due_at=case.resolve_due_at,
        overdue=case.overdue,
        escalation_level=case.escalation_level,
        reporter_count=case.reporter_count,
        merged_into=case.merged_into_id,
        rules_version=case.rules_version,
        route_path=[str(step) for step in case.route_path],
        tasks=[TaskOut.model_validate(task) for task in case.tasks],
        timeline=[event_out(event) for event in timeline(session, case.id)],
    )


def live_departments(tasks: list[Task]) -> list[str]:
    live = [task for task in tasks if task.state in LIVE_TASK_STATES]
    ordered = sorted(live, key=lambda task: (task.role != "lead", task.created_at))
    return list(dict.fromkeys(task.department for task in ordered))


def event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        case_id=event.case_id,
        seq=event.seq,
        at=event.at,
        actor=Actor(kind=ActorKind(event.actor_kind), id=event.actor_id),
        action=event.action,
        from_state=event.from_state,
        to_state=event.to_state,
        data=event.data,
        rules_version=event.rules_version,
        prev_hash=event.prev_hash,
        hash=event.hash,
    )
