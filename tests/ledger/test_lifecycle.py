"""The case lifecycle: every allowed move works, every other pair is refused, races conflict."""

from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from tests.support.factories import SYSTEM, filed_case, walk_to
from worker.contracts.enums import CaseState as C
from worker.contracts.enums import TaskState as T
from worker.db.models import AuditEvent, Case
from worker.db.session import session_factory
from worker.ledger.lifecycle import (
    CASE_TRANSITIONS,
    TASK_TRANSITIONS,
    ConcurrentChange,
    TransitionRefused,
    transition,
)

DESIGN_TABLE = {
    (C.received, C.triaged), (C.received, C.merged), (C.received, C.cancelled),
    (C.triaged, C.dispatched), (C.triaged, C.cancelled),
    (C.dispatched, C.accepted), (C.dispatched, C.triaged), (C.dispatched, C.cancelled),
    (C.accepted, C.in_progress), (C.accepted, C.resolved), (C.accepted, C.triaged),
    (C.accepted, C.cancelled),
    (C.in_progress, C.resolved), (C.in_progress, C.cancelled),
    (C.resolved, C.closed), (C.resolved, C.dispatched),
    (C.closed, C.dispatched),
}  # fmt: skip


def test_transition_table_is_the_designs() -> None:
    table = {(a, b) for a, targets in CASE_TRANSITIONS.items() for b in targets}
    assert table == DESIGN_TABLE
    assert set(CASE_TRANSITIONS) == set(C)
    assert set(TASK_TRANSITIONS) == set(T)


def _path_to(state: C) -> list[C]:
    """Shortest path of allowed moves from `received` to `state`."""
    paths: dict[C, list[C]] = {C.received: []}
    queue = deque([C.received])
    while queue:
        here = queue.popleft()
        for there in sorted(CASE_TRANSITIONS[here]):
            if there not in paths:
                paths[there] = [*paths[here], there]
                queue.append(there)
    return paths[state]


@pytest.mark.parametrize(("source", "target"), sorted(DESIGN_TABLE))
def test_every_allowed_move(sqlite_engine: Engine, source: C, target: C) -> None:
    case_id = filed_case(sqlite_engine)
    walk_to(sqlite_engine, case_id, _path_to(source))
    with session_factory(sqlite_engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        event = transition(session, case, target, actor=SYSTEM, data={"why": "测试"})
        assert (event.from_state, event.to_state) == (source.value, target.value)
    with session_factory(sqlite_engine)() as session:
        case = session.get_one(Case, case_id)
        assert case.state == target.value
        events = session.scalar(select(func.count()).where(AuditEvent.case_id == case_id))
        assert events == case.audit_seq == len(_path_to(source)) + 2


REFUSED = sorted((a, b) for a in C for b in C if (a, b) not in DESIGN_TABLE)


@settings(max_examples=60, deadline=None)
@given(pair=st.sampled_from(REFUSED))
def test_every_other_pair_is_refused(pair: tuple[C, C]) -> None:
    source, target = pair
    case = Case(id="c-1", state=source.value, audit_seq=3, audit_head="a" * 64)
    with pytest.raises(TransitionRefused) as refused:
        transition(None, case, target, actor=SYSTEM)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "c-1" in message
    assert f"'{source.value}'" in message
    assert f"'{target.value}'" in message
    assert case.state == source.value
    assert case.audit_seq == 3


def test_every_refused_pair_is_covered() -> None:
    assert len(REFUSED) == len(C) ** 2 - len(DESIGN_TABLE)


def test_refused_move_writes_nothing(sqlite_engine: Engine) -> None:
    case_id = filed_case(sqlite_engine)
    with session_factory(sqlite_engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        with pytest.raises(TransitionRefused, match="can move to: cancelled, merged, triaged"):
            transition(session, case, C.closed, actor=SYSTEM)
    with session_factory(sqlite_engine)() as session:
        assert session.get_one(Case, case_id).state == C.received.value
        count = session.scalar(select(func.count()).where(AuditEvent.case_id == case_id))
        assert count == 1


def test_two_connections_racing_on_one_case(pg_engine: Engine) -> None:
    """Both read version N; the first to commit wins, the second gets a clear conflict."""
    case_id = filed_case(pg_engine)
    both_loaded = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def contender(name: str, target: C) -> None:
        with session_factory(pg_engine)() as session:
            try:
                with session.begin():
                    case = session.get_one(Case, case_id)
                    both_loaded.wait(timeout=10)
                    if name == "second":
                        first_done.wait(timeout=10)
                    transition(session, case, target, actor=SYSTEM)
                outcomes[name] = "won"
            except ConcurrentChange as conflict:
                outcomes[name] = conflict
            finally:
                if name == "first":
                    first_done.set()

    first_done = threading.Event()
    threads = [
        threading.Thread(target=contender, args=("first", C.triaged)),
        threading.Thread(target=contender, args=("second", C.cancelled)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes["first"] == "won"
    conflict = outcomes["second"]
    assert isinstance(conflict, ConcurrentChange)
    assert case_id in str(conflict)
    assert "changed by someone else" in str(conflict)
    with session_factory(pg_engine)() as session:
        case = session.get_one(Case, case_id)
        assert case.state == C.triaged.value
        assert case.audit_seq == 2


def test_racing_without_ordering_still_yields_one_winner(pg_engine: Engine) -> None:
    """No choreography: whatever the interleaving, exactly one of the two moves lands."""
    case_id = filed_case(pg_engine)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def contender(target: C) -> None:
        with session_factory(pg_engine)() as session:
            try:
                with session.begin():
                    case = session.get_one(Case, case_id)
                    barrier.wait(timeout=10)
                    transition(session, case, target, actor=SYSTEM)
                results.append("won")
            except ConcurrentChange:
                results.append("conflict")

    threads = [threading.Thread(target=contender, args=(t,)) for t in (C.triaged, C.cancelled)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == ["conflict", "won"]
