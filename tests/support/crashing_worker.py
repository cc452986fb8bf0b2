"""A closeloop worker that dies (os._exit, like SIGKILL) right after the first run of a chosen
task has committed its transaction and before the broker gets the acknowledgement.

Usage: python -m tests.support.crashing_worker TASK_NAME MARKER_FILE [closeloop worker args]
The marker file makes the crash happen once: a restarted worker behaves normally.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from celery.signals import task_postrun


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
    _install(name, Path(marker_path))
    from worker.cli.main import app

    app(["worker", *rest])
