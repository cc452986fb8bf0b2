"""The report's queries side by side, all reading one snapshot of the database.

Each query of a report is independent of the others; on PostgreSQL they run at once on
separate connections, so a report takes about as long as its slowest query rather than the
sum. They stay consistent with each other: the first connection exports its snapshot
(REPEATABLE READ, `pg_export_snapshot()`) and every other one imports it, so all of them see
the store as it was at one instant, which the queries run one after another in one
READ COMMITTED session did not even guarantee. SQLite, or `parallel` of 1, runs them in
turn on the caller's session.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

Job = Callable[[Session], Any]
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")
_REPEATABLE = {"isolation_level": "REPEATABLE READ"}


def run_all(session: Session, jobs: Mapping[str, Job], parallel: int) -> dict[str, Any]:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if parallel <= 1 or len(jobs) < 2 or engine.dialect.name != "postgresql":
        return {name: job(session) for name, job in jobs.items()}
    with engine.connect() as exporter:
        exporter = exporter.execution_options(**_REPEATABLE)
        with exporter.begin():
            snapshot = str(exporter.scalar(text("SELECT pg_export_snapshot()")))
            if not _SNAPSHOT_ID.match(snapshot):
                raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
            with ThreadPoolExecutor(min(parallel, len(jobs))) as pool:
                futures = {
                    name: pool.submit(_on_snapshot, engine, snapshot, job)
                    for name, job in jobs.items()
                }
                return {name: future.result() for name, future in futures.items()}


def _on_snapshot(engine: Engine, snapshot: str, job: Job) -> Any:
    with Session(engine) as session:
        connection = session.connection(execution_options=_REPEATABLE)
        # Must be the transaction's first statement; the id was checked above (SET takes no
        # bound parameters).
        connection.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        try:
            return job(session)
        finally:
            session.rollback()
