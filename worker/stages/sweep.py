"""The sweeper: the database is the truth, so work is re-driven from state, not from memory.

A case that has sat in `received` or `triaged` longer than the pipeline ever takes lost its
message somewhere (a broker restart without persistence, a task dead-lettered while the
database was down). The sweeper queues the stage it is waiting for again; stages are
idempotent, so a case that was merely slow is not harmed.

Under a backlog many cases wait longer than that without being lost. Each case is re-driven
at most once per `stalled_after` (the caller's `claim` decides), so the sweeper never piles
message upon message onto a queue that is merely long.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.config import get_settings
from worker.contracts.enums import CaseState
from worker.db.models import Case
from worker.logging import get_logger
from worker.messaging.outbox import enqueue
from worker.tasks.names import DISPATCH, MONITOR

log = get_logger("closeloop.sweep")

_NEXT_STAGE = {CaseState.received: MONITOR, CaseState.triaged: DISPATCH}


Claim = Callable[[list[str], int], set[str]]


def sweep_stalled(
    session: Session,
    older_than: timedelta | None = None,
    limit: int = 500,
    claim: Claim | None = None,
) -> int:
    """Queue the next stage again for cases stuck before dispatch; returns how many.

    `claim(case_ids, seconds)` returns the ids not re-driven within the last `seconds`
    (and marks them); without it every stuck case is re-driven."""
    if older_than is None:
        older_than = timedelta(seconds=get_settings().stalled_after)
    stalled = session.execute(
        select(Case.id, Case.state)
        .where(
            Case.state.in_([s.value for s in _NEXT_STAGE]),
            Case.updated_at < now() - older_than,
        )
        .order_by(Case.updated_at)
        .limit(limit * 4 if claim else limit)
    ).all()
    if claim is not None and stalled:
        fresh = claim([case_id for case_id, _ in stalled], int(older_than.total_seconds()))
        stalled = [row for row in stalled if row[0] in fresh][:limit]
    for case_id, state in stalled:
        enqueue(session, _NEXT_STAGE[CaseState(state)], {"case_id": case_id}, case_id=case_id)
    if stalled:
        log.warning("re-driving stalled cases", count=len(stalled))
    return len(stalled)
