"""An audit event as read back: one entry of a case's timeline."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from worker.contracts.enums import ActorKind, CaseState


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ActorKind
    id: str = Field(description="Who exactly: a token name, a department id, a stage name.")


class AuditEventOut(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    case_id: str
    seq: int = Field(ge=1, description="Position in the case's chain, from 1 without gaps.")
    at: datetime
    actor: Actor
    action: str = Field(description="What happened, e.g. `case.received`, `task.accepted`.")
    from_state: CaseState | None
    to_state: CaseState | None
    data: dict[str, Any]
    rules_version: str | None
    prev_hash: str = Field(
        description="SHA-256 of the previous event of this case (zeros for the first)."
    )
    hash: str = Field(description="SHA-256 over this event's canonical encoding and prev_hash.")
