"""The sweeper: the database is the truth, so work is re-driven from state, not from memory.

A case that has sat in `received` or `triaged` longer than the pipeline ever takes lost its
message somewhere (a broker restart without persistence, a task dead-lettered while the
database was down). The sweeper queues the stage it is waiting for again; stages are
idempotent, so a case that was merely slow is not harmed.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.config import get_settings
from worker.contracts.enums import CaseState
from worker.db.models import Case
from worker.logging import get_logger
from worker.outbox import enqueue
from worker.tasks.names import DISPATCH, MONITOR

log = get_logger("closeloop.sweep")

_NEXT_STAGE = {CaseState.received: MONITOR, CaseState.triaged: DISPATCH}


def sweep_stalled(session: Session, older_than: timedelta | None = None, limit: int = 500) -> int:
    """Queue the next stage again for cases stuck before dispatch; returns how many."""
    if older_than is None:
        older_than = timedelta(seconds=get_settings().stalled_after)
    stalled = session.execute(
        select(Case.id, Case.state)
        .where(
            Case.state.in_([s.value for s in _NEXT_STAGE]),
            Case.updated_at < now() - older_than,
        )
        .order_by(Case.updated_at)
        .limit(limit)
    ).all()
    for case_id, state in stalled:
        enqueue(session, _NEXT_STAGE[CaseState(state)], {"case_id": case_id}, case_id=case_id)
    if stalled:
        log.warning("re-driving stalled cases", count=len(stalled))
    return len(stalled)
