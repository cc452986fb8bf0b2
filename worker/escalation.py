"""The escalation plan as a case stores it: the route's chain, decided at dispatch.

Each step is `{"level", "after", "notify", "due_at" (ISO), "delay_s"}`. The deadline scan
settles a step exactly once per dispatch round: `fired_at` when it escalated, `passed_at`
when it no longer applied by its due time (the lead acknowledged before an `acknowledge`
step came due). A new round writes a fresh plan, so its steps may fire again.

Pure functions over plain lists, so that the model can keep `next_escalation_at` in step
with the plan without importing a stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

Step = dict[str, Any]

ACKNOWLEDGE = "acknowledge"
RESOLVE = "resolve"


def step_due(step: Step) -> datetime:
    return datetime.fromisoformat(str(step["due_at"]))


def is_settled(step: Step) -> bool:
    return "fired_at" in step or "passed_at" in step


def open_steps(plan: Sequence[Step] | None) -> list[Step]:
    """Steps neither fired nor passed over, lowest level first."""
    return sorted((s for s in plan or () if not is_settled(s)), key=lambda s: int(s["level"]))


def next_due(plan: Sequence[Step] | None) -> datetime | None:
    """When the earliest open step comes due; None once every step is settled."""
    return min((step_due(s) for s in open_steps(plan)), default=None)


def due_steps(plan: Sequence[Step] | None, at: datetime) -> list[Step]:
    """Open steps whose due time is `at` or before, lowest level first."""
    return [s for s in open_steps(plan) if step_due(s) <= at]


def settled(plan: Sequence[Step], level: int, **marks: Any) -> list[Step]:
    """A copy of `plan` with `marks` set on the step of `level` (a new list: JSON columns
    notice assignment, not mutation in place)."""
    return [{**s, **marks} if int(s["level"]) == level else dict(s) for s in plan]
