"""The citizen's answer at the callback, and a supervisor's reopening of a case."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from worker.contracts.case import CaseSummary
from worker.contracts.wire import Flag

MAX_COMMENT_CHARS = 2000
MAX_REASON_CHARS = 1000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Feedback(_Body):
    """What the citizen said when the hotline called back after the case was resolved."""

    solved: Flag = Field(description="Is the problem solved? (true or false)")
    satisfied: Flag = Field(description="Is the citizen satisfied with how it was handled?")
    comment: Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS)] = ""


class Reopen(_Body):
    """Why a supervisor sends a resolved or closed case back to its lead."""

    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON_CHARS)
    ]


class CallbackOut(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    outcome: Literal["closed", "reopened", "no_answer"]
    solved: bool | None
    satisfied: bool | None
    comment: str
    recorded_by: str
    recorded_at: datetime
    case: CaseSummary = Field(description="The case after the answer: closed, or reopened.")
