"""A closeloop worker that dies (os._exit, like SIGKILL) right after the first run of a chosen
task has committed its transaction and before the broker gets the acknowledgement.

Usage: python -m tests.support.crashing_worker TASK_NAME MARKER_FILE [closeloop worker args]
TASK_NAME may also be `intake:taken` (an intake consumer, `closeloop intake consume`, that
dies as soon as it has taken a queued incident, before anything else) or `intake:filed` (one
that dies once the case is committed, before the queue hears it is done). The monitor task
dispatches the case it has triaged itself (`dispatch_here`): `pipeline:triaged` dies between
the two transactions, `pipeline:dispatched` right after the second. For the dispatch task,
that hand-off is left undone, so that the relay sends the held message to the dispatch task.
The marker file makes the crash happen once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from celery.signals import task_postrun


def _crash_once(marker: Path) -> None:
    if not marker.exists():
        marker.write_text("crashed")
        os._exit(9)


def _install_intake(moment: str, marker: Path) -> None:
    from worker.messaging import intake_queue
    from worker.messaging.reliable_queue import ReliableQueue

    if moment == "intake:taken":
        take = ReliableQueue.take

        def take_then_die(self: ReliableQueue, timeout: int) -> Any:
            taken = take(self, timeout)
            if taken is not None:
                _crash_once(marker)
            return taken

        ReliableQueue.take = take_then_die  # type: ignore[method-assign]
    else:
        handle = intake_queue.handle

        def handle_then_die(*args: Any, **kwargs: Any) -> Any:
            outcome = handle(*args, **kwargs)
            if outcome is intake_queue.Outcome.filed:
                _crash_once(marker)
            return outcome

        intake_queue.handle = handle_then_die


def _install_pipeline(moment: str, marker: Path) -> None:
    from worker.tasks import pipeline

    dispatch_here = pipeline.dispatch_here

    def crash_around(*args: Any) -> None:
        if moment == "pipeline:triaged":
            _crash_once(marker)
        dispatch_here(*args)
        _crash_once(marker)

    pipeline.dispatch_here = crash_around


def _leave_dispatch_to_the_relay() -> None:
    from worker.tasks import pipeline

    pipeline.dispatch_here = lambda *args: None


def _install(task_name: str, marker: Path) -> None:
    @task_postrun.connect(weak=False)
    def crash_once(sender: Any = None, **_: Any) -> None:
        # task_postrun runs after the task returned (its transaction committed) and before
        # acks_late acknowledges the message.
        if sender is not None and sender.name == task_name and not marker.exists():
            marker.write_text("crashed")
            os._exit(9)


if __name__ == "__main__":
    name, marker_path, *rest = sys.argv[1:]
    from worker.cli.main import app

    if name.startswith("intake:"):
        _install_intake(name, Path(marker_path))
        app(["intake", "consume", *rest])
    elif name.startswith("pipeline:"):
        _install_pipeline(name, Path(marker_path))
        app(["worker", *rest])
    else:
        if name == "closeloop.pipeline.dispatch":
            _leave_dispatch_to_the_relay()
        _install(name, Path(marker_path))
        app(["worker", *rest])
