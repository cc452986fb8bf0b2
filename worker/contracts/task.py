"""A department's task as the task API shows it, and what a department sends to act on it."""

from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, UrlConstraints

from worker.contracts.case import CaseSummary
from worker.contracts.enums import TaskRole, TaskState

MAX_NOTE_CHARS = 2000
MAX_REASON_CHARS = 1000
MAX_ATTACHMENTS = 10
MAX_URL_CHARS = 2000

Note = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NOTE_CHARS)
]
Attachment = Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_CHARS)]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON_CHARS)
]


class TaskView(BaseModel):
    """One department's assignment on a case, with enough of the case to act on it."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: str
    case_id: str
    department: str
    role: TaskRole
    state: TaskState
    dispatch_round: int = Field(description="1 at first dispatch; +1 after a return or reopen.")
    acknowledge_due_at: datetime | None
    resolve_due_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    case: CaseSummary


class TaskPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[TaskView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProgressReport(_Body):
    """What was done so far. The first report on an accepted task starts the work."""

    note: Note
    attachments: list[Attachment] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Links to photos or documents of the work.",
    )


class Resolution(_Body):
    """The result: what was done to solve the problem."""

    note: Note


class TaskReturn(_Body):
    """Why the task is not this department's; the case goes to someone else."""

    reason: Reason
