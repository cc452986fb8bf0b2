"""A case as read through the API: its state, departments, deadlines, tasks and timeline."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from worker.contracts.audit import AuditEventOut
from worker.contracts.enums import CaseState, Priority, TaskRole, TaskState
from worker.contracts.incident import Location


class TaskOut(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: str
    case_id: str
    department: str
    role: TaskRole
    state: TaskState
    acknowledge_due_at: datetime | None
    resolve_due_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CaseOut(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: str
    state: CaseState
    source: str
    external_id: str | None
    category: str
    title: str
    description: str
    location: Location
    priority: Priority
    received_at: datetime
    occurred_at: datetime | None
    lead_department: str | None
    departments: list[str] = Field(description="Every department holding a live task, lead first.")
    acknowledge_due_at: datetime | None
    resolve_due_at: datetime | None
    overdue: bool
    escalation_level: int
    reporter_count: int = Field(description="1, plus one for each duplicate report merged into it.")
    merged_into: str | None
    rules_version: str | None
    route_path: list[str]
    tasks: list[TaskOut]
    timeline: list[AuditEventOut]


class CaseSummary(BaseModel):
    """One line of a case list: enough to pick a case out, not its timeline."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: str
    state: CaseState
    category: str
    title: str
    district: str | None
    priority: Priority
    received_at: datetime
    lead_department: str | None
    resolve_due_at: datetime | None
    overdue: bool
    escalation_level: int


class CasePage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[CaseSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
