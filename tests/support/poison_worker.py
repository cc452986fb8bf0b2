"""A closeloop worker that also runs a poison task: one that kills its worker process every
time it starts, as a message that crashes whatever runs it would.

Usage: python -m tests.support.poison_worker RUNS_FILE [closeloop worker args]
Each start of the task appends a line to RUNS_FILE before the process dies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from worker.tasks.app import app as celery_app
from worker.tasks.base import ClosedLoopTask

POISON = "closeloop.pipeline.test_poison"
_runs: Path | None = None


@celery_app.task(name=POISON, base=ClosedLoopTask)
def poison(case_id: str) -> None:
    assert _runs is not None
    with _runs.open("a") as runs:
        runs.write(f"{case_id}\n")
    os._exit(9)


if __name__ == "__main__":
    runs_path, *rest = sys.argv[1:]
    _runs = Path(runs_path)
    from worker.cli.main import app

    app(["worker", *rest])
