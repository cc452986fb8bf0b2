"""What a long-running closeloop process does before it serves: `closeloop api` before the
first request, `closeloop worker` before its pool starts, `closeloop intake consume` before
it takes the first incident off the queue."""

from __future__ import annotations

import gc

from worker.logging import get_logger


def warm_up() -> None:
    """Load the routing rules, set up the ORM and make the database engine (which imports the
    driver; it connects later, in each process that uses it), so that the first case does not
    wait for them: the driver's import alone took 0.1 s in a webhook worker's first send. A
    worker's pool processes (or threads) inherit all three.

    Then move everything loaded so far out of the garbage collector's sight (`gc.freeze`):
    modules, the ORM's set-up and the rules live as long as the process, and a full
    collection that scans them all made pauses of 0.06-0.2 s in the middle of a case (in a
    worker's pool processes, the API and the intake consumer)."""
    from sqlalchemy.orm import configure_mappers

    import worker.db.models  # noqa: F401
    from worker.db.session import get_engine
    from worker.rules.registry import maybe_reload

    configure_mappers()  # else the first query of every process sets up the ORM
    get_engine()  # no connection yet: a forked process must open its own
    try:
        maybe_reload()
    except Exception as error:  # what uses the rules says so again, and waits for usable ones
        get_logger("closeloop.start").warning("rules not loaded at start", error=str(error))
    gc.collect()
    gc.freeze()
