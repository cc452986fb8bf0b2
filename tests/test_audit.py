"""The audit store: chained, append-only, and verification catches every kind of tampering."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DatabaseError

from tests.support.factories import SYSTEM, filed_case, walk_to
from tests.support.statements import recorded
from tests.support.tamper import triggers_disabled
from worker.audit import GENESIS, append_note, chain_hash, timeline, verify
from worker.audit_keys import keyring
from worker.contracts.enums import CaseState as C
from worker.db.guard import ConcurrentChange
from worker.db.models import Case
from worker.db.session import session_factory
from worker.lifecycle import record

PATH = [C.triaged, C.dispatched, C.accepted, C.in_progress, C.resolved]


def _case_with_history(engine: Engine) -> str:
    case_id = filed_case(engine)
    walk_to(engine, case_id, PATH)
    return case_id


def test_events_are_chained_in_order(any_engine: Engine) -> None:
    case_id = _case_with_history(any_engine)
    with session_factory(any_engine)() as session:
        events = timeline(session, case_id)
        case = session.get_one(Case, case_id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.to_state for e in events] == ["received", *[s.value for s in PATH]]
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert (case.audit_seq, case.audit_head) == (6, events[-1].hash)


def test_stored_events_rehash_to_their_hash(any_engine: Engine) -> None:
    """What is hashed is what is stored: data, times and Chinese text round-trip exactly."""
    case_id = filed_case(any_engine)
    with session_factory(any_engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        record(
            session,
            case,
            actor=SYSTEM,
            action="case.note",
            data={"备注": "燃气泄漏，请立即处理", "reading": 0.1, "n": 3, "nested": {"ok": True}},
        )
    with session_factory(any_engine)() as session:
        for event in timeline(session, case_id):
            assert event.key_id == "test-key"
            recomputed = chain_hash(
                keyring().keys["test-key"], case_id=event.case_id, seq=event.seq, at=event.at, actor_kind=event.actor_kind,
                actor_id=event.actor_id, action=event.action, from_state=event.from_state,
                to_state=event.to_state, data=event.data, rules_version=event.rules_version,
                prev_hash=event.prev_hash, key_id=event.key_id,
            )  # fmt: skip
            assert recomputed == event.hash
        assert timeline(session, case_id)[-1].data["备注"] == "燃气泄漏，请立即处理"


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"]
)
def test_database_refuses_update_and_delete(any_engine: Engine, statement: str) -> None:
    _case_with_history(any_engine)
    with pytest.raises(DatabaseError, match="append-only"), any_engine.begin() as connection:
        connection.execute(text(statement))
    assert verify(any_engine).ok


def test_postgres_refuses_truncate(pg_engine: Engine) -> None:
    _case_with_history(pg_engine)
    with pytest.raises(DatabaseError, match="append-only"), pg_engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_events"))


def test_untouched_store_verifies(any_engine: Engine) -> None:
    for _ in range(3):
        _case_with_history(any_engine)
    report = verify(any_engine)
    assert report.ok, report.problems
    assert (report.cases, report.events) == (3, 18)


def _only_problem(engine: Engine, case_id: str) -> str:
    report = verify(engine)
    assert not report.ok
    assert len(report.problems) == 1
    problem = report.problems[0]
    assert problem.case_id == case_id
    return str(problem)


def test_altered_event_is_caught(any_engine: Engine) -> None:
    other = _case_with_history(any_engine)
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        connection.execute(
            text(
                "UPDATE audit_events SET actor_id = 'someone-else' WHERE case_id = :c AND seq = 3"
            ),
            {"c": case_id},
        )
    message = _only_problem(any_engine, case_id)
    assert "event 3" in message
    assert "altered" in message
    assert verify(any_engine, case_id=other).ok


def test_removed_event_is_caught(any_engine: Engine) -> None:
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        connection.execute(
            text("DELETE FROM audit_events WHERE case_id = :c AND seq = 4"), {"c": case_id}
        )
    message = _only_problem(any_engine, case_id)
    assert "event 5" in message
    assert "expected sequence 4" in message


def test_removed_last_event_is_caught(any_engine: Engine) -> None:
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        connection.execute(
            text("DELETE FROM audit_events WHERE case_id = :c AND seq = 6"), {"c": case_id}
        )
    message = _only_problem(any_engine, case_id)
    assert "chain head" in message
    assert "records 6 events but the chain ends at 5" in message


def test_swapped_events_are_caught(any_engine: Engine) -> None:
    """Two events trade places (their positions swapped, content kept)."""
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        swap = "UPDATE audit_events SET seq = :to WHERE case_id = :c AND seq = :fr"
        connection.execute(text(swap), {"c": case_id, "fr": 2, "to": -1})
        connection.execute(text(swap), {"c": case_id, "fr": 3, "to": 2})
        connection.execute(text(swap), {"c": case_id, "fr": -1, "to": 3})
    message = _only_problem(any_engine, case_id)
    assert "event 2" in message


def test_verify_one_case(any_engine: Engine) -> None:
    first = _case_with_history(any_engine)
    _case_with_history(any_engine)
    report = verify(any_engine, case_id=first)
    assert report.ok
    assert (report.cases, report.events) == (1, 6)


def test_an_event_is_written_after_its_case_row(any_engine: Engine) -> None:
    """The case row's version check must run before the event row is inserted: it is what
    tells a concurrent writer apart (a clash on the event's sequence number would be a less
    clear error). The case first, then the event; nothing else."""
    case_id = filed_case(any_engine)
    with session_factory(any_engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        with recorded(any_engine) as statements:
            record(session, case, actor=SYSTEM, action="case.note", data={"text": "ok"})
    written = [" ".join(statement.split()[:3]) for statement in statements]
    assert written == ["UPDATE cases SET", "INSERT INTO audit_events"]


def test_in_a_savepoint_the_event_still_follows_its_case_row(any_engine: Engine) -> None:
    """There the event is an ORM object (so that a rolled-back savepoint takes it back), and
    `AuditEvent.case` is what orders the two rows in the flush."""
    case_id = filed_case(any_engine)
    with session_factory(any_engine)() as session, session.begin():
        case = session.get_one(Case, case_id)
        with session.begin_nested(), recorded(any_engine) as statements:
            record(session, case, actor=SYSTEM, action="case.note", data={"text": "ok"})
    written = [" ".join(s.split()[:3]) for s in statements if not s.startswith("SAVEPOINT")]
    assert written == ["UPDATE cases SET", "INSERT INTO audit_events"]
    assert verify(any_engine, case_id=case_id).ok


def test_a_note_on_a_case_the_session_does_not_hold_reads_only_its_head(
    any_engine: Engine,
) -> None:
    case_id = filed_case(any_engine)
    with (
        session_factory(any_engine)() as session,
        session.begin(),
        recorded(any_engine) as statements,
    ):
        assert append_note(session, case_id, actor=SYSTEM, action="case.note")
        assert not append_note(session, "no-such-case", actor=SYSTEM, action="case.note")
    assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE", "INSERT", "SELECT"]
    assert statements[0].startswith("SELECT cases.version, cases.audit_seq, cases.audit_head FROM")
    with session_factory(any_engine)() as session:
        assert timeline(session, case_id)[-1].action == "case.note"
    assert verify(any_engine, case_id=case_id).ok


def test_a_note_meeting_a_concurrent_writer_is_refused(pg_engine: Engine) -> None:
    """Someone else moves the case between the note's read of the head and its write: the
    note must fail on the version guard, not fork the chain."""
    case_id = filed_case(pg_engine)

    meddled: list[str] = []

    def meddle(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("SELECT cases.version, cases.audit_seq") and not meddled:
            meddled.append(statement)
            with session_factory(pg_engine)() as other, other.begin():
                record(other, other.get_one(Case, case_id), actor=SYSTEM, action="case.other")

    event.listen(pg_engine, "after_cursor_execute", meddle)
    try:
        with (
            pytest.raises(ConcurrentChange),
            session_factory(pg_engine)() as session,
            session.begin(),
        ):
            append_note(session, case_id, actor=SYSTEM, action="case.note")
    finally:
        event.remove(pg_engine, "after_cursor_execute", meddle)
    assert meddled
    with session_factory(pg_engine)() as session:
        assert [e.action for e in timeline(session, case_id)][-1] == "case.other"
    assert verify(pg_engine, case_id=case_id).ok
