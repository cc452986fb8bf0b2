"""Tasks of the `timers` queue, run by beat: the outbox relay and the stalled-case sweeper."""

from __future__ import annotations

from worker.celery_app import app
from worker.db.session import get_engine, transaction
from worker.outbox import relay
from worker.stages.sweep import sweep_stalled
from worker.tasks_base import ClosedLoopTask

RELAY_OUTBOX = "closeloop.timers.relay_outbox"
SWEEP_STALLED = "closeloop.timers.sweep_stalled"

BEAT = {
    "relay-outbox": {"task": RELAY_OUTBOX, "schedule": 5.0},
    "sweep-stalled": {"task": SWEEP_STALLED, "schedule": 30.0},
}


@app.task(name=RELAY_OUTBOX, base=ClosedLoopTask)
def relay_outbox() -> int:
    return relay(get_engine())


@app.task(name=SWEEP_STALLED, base=ClosedLoopTask)
def sweep() -> int:
    with transaction() as session:
        return sweep_stalled(session)
