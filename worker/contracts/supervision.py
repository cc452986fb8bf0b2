"""What a supervisor sends to step into a case: reassign it, escalate it, cancel it."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Reason = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1000,
        description="Why: kept on the case's timeline and sent to the departments told.",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReassignRequest(_Strict):
    """Give the case a new lead department, with fresh deadlines."""

    department: str = Field(
        min_length=1, max_length=64, description="A department id of the rules in force."
    )
    reason: Reason


class EscalateRequest(_Strict):
    """Raise the case one escalation level by hand."""

    reason: Reason


class CancelRequest(_Strict):
    """Cancel the case and every live task on it."""

    reason: Reason
