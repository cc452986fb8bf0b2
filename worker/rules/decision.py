"""What routing decides for one incident: the wire contract between the rules and the pipeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.contracts.enums import Priority
from worker.rules.model import DuplicatePolicy


class EscalationStep(BaseModel):
    """Level `level`: tell `notify` once `delay` has passed since the `after` deadline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: int = Field(ge=1)
    after: Literal["acknowledge", "resolve"]
    delay: timedelta
    notify: str


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lead: str
    assisting: list[str] = Field(description="Deduplicated, in route order; never holds the lead.")
    priority: Priority
    acknowledge_within: timedelta
    resolve_within: timedelta
    acknowledge_due_at: datetime
    resolve_due_at: datetime
    escalation: list[EscalationStep] = Field(description="Level 1 first.")
    share_contact: bool
    duplicate_policy: DuplicatePolicy | None
    route_path: list[str] = Field(description="The routes that matched: the lead's route first.")
    ruleset_version: str

    def escalation_due_at(self, step: EscalationStep) -> datetime:
        deadline = self.acknowledge_due_at if step.after == "acknowledge" else self.resolve_due_at
        return deadline + step.delay
