"""Every periodic entry `closeloop beat` runs, gathered from the task modules."""

from __future__ import annotations

from typing import Any

from worker.config import get_settings
from worker.tasks import timers, webhooks


def _sweep_every() -> float:
    # Look at least twice per stall period, and never more often than every 2 s.
    return min(30.0, max(2.0, get_settings().stalled_after / 2))


def beat_schedule() -> dict[str, dict[str, Any]]:
    schedule = {**timers.BEAT, **webhooks.beat()}
    schedule["sweep-stalled"] = {**schedule["sweep-stalled"], "schedule": _sweep_every()}
    return schedule
