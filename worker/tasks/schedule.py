"""Every periodic entry `closeloop beat` runs, gathered from the task modules."""

from __future__ import annotations

from typing import Any

from worker.tasks import timers, webhooks


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {**timers.BEAT, **webhooks.beat()}
