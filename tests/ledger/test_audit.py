"""The audit store: chained, append-only, and verification catches every kind of tampering."""

from __future__ import annotations

import base64
import itertools
import json
import multiprocessing
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, event, insert, make_url, text
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from tests.conftest import TEST_AUDIT_KEYS
from tests.support.factories import SYSTEM, filed_case, walk_to
from tests.support.statements import recorded
from tests.support.tamper import events_of, last_hash, sha256_seal, triggers_disabled
from worker.cli import user_error
from worker.cli.main import app
from worker.config import reset_settings_cache
from worker.contracts.enums import CaseState as C
from worker.db.guard import ConcurrentChange
from worker.db.migrate import current_revision, upgrade
from worker.db.models import AuditEvent, Case
from worker.db.session import make_engine, session_factory
from worker.ledger.audit import GENESIS, append_note, chain_hash, timeline, verify
from worker.ledger.audit_anchor import (
    Anchor,
    AnchorInvalid,
    load_anchor,
    merkle_root,
    newest_anchor,
    write_anchor,
)
from worker.ledger.audit_keys import AuditKeyError, ensure_key, keyring, keyring_in, parse_keys
from worker.ledger.lifecycle import record

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
                keyring().keys["test-key"], case_id=event.case_id, seq=event.seq, at=event.at,
                actor_kind=event.actor_kind, actor_id=event.actor_id, action=event.action,
                from_state=event.from_state, to_state=event.to_state, data=event.data,
                rules_version=event.rules_version, prev_hash=event.prev_hash, key_id=event.key_id,
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


# --- What an intruder with database access tries, and how each is found ---------------------


def _anchor(engine: Engine, folder: Path) -> Anchor:
    path, report = write_anchor(engine, folder)
    assert path is not None, report.problems
    return load_anchor(path)


def _problems(engine: Engine, anchor: Anchor | None = None) -> list[str]:
    return [str(p) for p in verify(engine, anchor=anchor).problems]


def test_database_refuses_deleting_cases(any_engine: Engine) -> None:
    case_id = _case_with_history(any_engine)
    with (
        pytest.raises(DatabaseError, match="kept for the audit store"),
        any_engine.begin() as connection,
    ):
        connection.execute(text("DELETE FROM cases WHERE id = :c"), {"c": case_id})
    assert verify(any_engine).ok


@pytest.mark.parametrize(
    "statement", ["TRUNCATE cases CASCADE", "TRUNCATE cases, tasks, reporters CASCADE"]
)
def test_postgres_refuses_truncating_cases(pg_engine: Engine, statement: str) -> None:
    _case_with_history(pg_engine)
    with pytest.raises(DatabaseError, match="refused"), pg_engine.begin() as connection:
        connection.execute(text(statement))
    assert verify(pg_engine).ok


def _insert_event(connection: Connection, **changes: object) -> None:
    row = {
        "case_id": "c", "seq": 1, "at": datetime(2026, 1, 1, tzinfo=UTC), "actor_kind": "system",
        "actor_id": "x", "action": "case.note", "from_state": None, "to_state": None,
        "data": {}, "rules_version": None, "prev_hash": GENESIS, "key_id": "test-key",
        "hash": "f" * 64, **changes,
    }  # fmt: skip
    connection.execute(insert(AuditEvent.__table__), row)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seq=st.integers(min_value=-3, max_value=9), linked=st.booleans())
def test_database_refuses_an_event_that_does_not_extend_its_chain(
    sqlite_engine: Engine, seq: int, linked: bool
) -> None:
    """Any sequence number but head + 1, or any previous hash but the head's, is refused; the
    one event that extends the head is taken."""
    case_id = filed_case(sqlite_engine)
    with session_factory(sqlite_engine)() as session:
        head = session.get_one(Case, case_id)
        head_seq, head_hash = head.audit_seq, head.audit_head
    prev = head_hash if linked else "e" * 64
    fits = seq == head_seq + 1 and linked
    with sqlite_engine.connect() as connection, connection.begin() as transaction:
        if fits:
            _insert_event(connection, case_id=case_id, seq=seq, prev_hash=prev)
        else:
            with pytest.raises(DatabaseError, match="does not extend its chain"):
                _insert_event(connection, case_id=case_id, seq=seq, prev_hash=prev)
        transaction.rollback()


@pytest.mark.parametrize(
    ("seq", "prev"),
    [(1, GENESIS), (3, "head"), (2, GENESIS), (2, "e" * 64), (0, "head")],
    ids=["restart", "gap", "unlinked", "wrong-link", "behind"],
)
def test_postgres_refuses_an_event_that_does_not_extend_its_chain(
    pg_engine: Engine, seq: int, prev: str
) -> None:
    case_id = filed_case(pg_engine)
    with session_factory(pg_engine)() as session:
        head_hash = session.get_one(Case, case_id).audit_head
    link = head_hash if prev == "head" else prev
    refused = pytest.raises(DatabaseError, match="does not extend its chain")
    with refused, pg_engine.begin() as connection:
        _insert_event(connection, case_id=case_id, seq=seq, prev_hash=link)
    refused = pytest.raises(DatabaseError, match="does not extend its chain")
    with refused, pg_engine.begin() as connection:  # a new chain starts at 1, from the genesis
        _insert_event(connection, case_id="new", seq=2, prev_hash=GENESIS)


def test_deleted_case_rows_are_found(any_engine: Engine) -> None:
    """Events without their case: the case was deleted (the owner, triggers off)."""
    kept = _case_with_history(any_engine)
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        connection.execute(text("DELETE FROM tasks WHERE case_id = :c"), {"c": case_id})
        connection.execute(text("DELETE FROM cases WHERE id = :c"), {"c": case_id})
    message = _only_problem(any_engine, case_id)
    assert "no case row" in message
    assert "chain of 6 events left orphaned" in message
    assert verify(any_engine, case_id=kept).ok


def test_truncated_cases_are_found_with_their_events_or_without(
    pg_engine: Engine, tmp_path: Path
) -> None:
    """`TRUNCATE cases CASCADE` once answered `OK: 0 events in 0 cases`. Events left behind
    name their cases; with the events gone too, the anchor does."""
    cases = {_case_with_history(pg_engine) for _ in range(2)}
    anchor = _anchor(pg_engine, tmp_path)
    with triggers_disabled(pg_engine) as connection:
        connection.execute(text("TRUNCATE cases CASCADE"))
    assert {p.case_id for p in verify(pg_engine).problems} == cases
    assert all("no case row" in p for p in _problems(pg_engine))
    with triggers_disabled(pg_engine) as connection:
        connection.execute(text("TRUNCATE audit_events"))
    assert verify(pg_engine).ok  # an empty store is all a store without an anchor can say
    report = verify(pg_engine, anchor=anchor)
    assert {p.case_id for p in report.problems} == cases
    assert all("anchored with 6 events, now gone" in str(p) for p in report.problems)


def test_a_case_without_events_is_found(any_engine: Engine) -> None:
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE case_id = :c"), {"c": case_id})
    message = _only_problem(any_engine, case_id)
    assert "has no events (it records 6)" in message


def test_an_orphaned_chain_missing_its_start_is_found(any_engine: Engine) -> None:
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        connection.execute(
            text("DELETE FROM audit_events WHERE case_id = :c AND seq < 3"), {"c": case_id}
        )
    message = _only_problem(any_engine, case_id)
    assert "event 3" in message
    assert "expected sequence 1" in message


def test_a_forged_insert_is_found(any_engine: Engine) -> None:
    """Well chained (so the trigger lets it in), the head moved on, but sealed without the key:
    the public SHA-256 is all a forger can compute."""
    case_id = _case_with_history(any_engine)
    with any_engine.begin() as connection:
        last = events_of(connection, case_id)[-1]
        forged = {**last, "seq": 7, "prev_hash": last_hash(connection, case_id),
                  "action": "case.closed", "to_state": "closed"}  # fmt: skip
        digest = sha256_seal(**forged)
        _insert_event(connection, **forged, hash=digest)
        connection.execute(
            text("UPDATE cases SET audit_seq = 7, audit_head = :h WHERE id = :c"),
            {"h": digest, "c": case_id},
        )
    message = _only_problem(any_engine, case_id)
    assert "event 7" in message
    assert "does not match its MAC" in message


def test_a_chain_rewritten_with_plain_sha256_is_found(any_engine: Engine) -> None:
    """Every event altered and re-hashed in order, the head moved to match: every link holds,
    but no seal does."""
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        prev = GENESIS
        for event in events_of(connection, case_id):
            event = {**event, "actor_id": "someone-else", "prev_hash": prev}
            prev = sha256_seal(**event)
            connection.execute(
                text("UPDATE audit_events SET actor_id = :a, prev_hash = :p, hash = :h "
                     "WHERE case_id = :c AND seq = :s"),
                {"a": "someone-else", "p": event["prev_hash"], "h": prev, "c": case_id,
                 "s": event["seq"]},
            )  # fmt: skip
        connection.execute(
            text("UPDATE cases SET audit_head = :h WHERE id = :c"), {"h": prev, "c": case_id}
        )
    message = _only_problem(any_engine, case_id)
    assert "event 1" in message
    assert "does not match its MAC" in message


def test_a_trimmed_tail_with_its_head_moved_back_is_found_against_the_anchor(
    any_engine: Engine, tmp_path: Path
) -> None:
    case_id = _case_with_history(any_engine)
    anchor = _anchor(any_engine, tmp_path)
    with triggers_disabled(any_engine) as connection:
        connection.execute(
            text("DELETE FROM audit_events WHERE case_id = :c AND seq > 4"), {"c": case_id}
        )
        connection.execute(
            text("UPDATE cases SET audit_seq = 4, audit_head = :h WHERE id = :c"),
            {"h": last_hash(connection, case_id), "c": case_id},
        )
    assert verify(any_engine).ok  # the limit without an anchor: a tail cut with its head
    (message,) = _problems(any_engine, anchor)
    assert "anchored at 6 events but the chain ends at 4" in message


def test_a_trigger_disabled_by_the_owner_lets_nothing_pass_unseen(pg_engine: Engine) -> None:
    """The owner can switch the insert trigger off and fork a chain; verify still names it."""
    case_id = _case_with_history(pg_engine)
    with pg_engine.begin() as connection:
        connection.execute(
            text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_extend_chain")
        )
        _insert_event(connection, case_id=case_id, seq=7, prev_hash="e" * 64)
        connection.execute(
            text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_extend_chain")
        )
    message = _only_problem(pg_engine, case_id)
    assert "event 7" in message
    assert "previous-hash link broken" in message


def test_anchored_chains_may_grow(any_engine: Engine, tmp_path: Path) -> None:
    case_id = _case_with_history(any_engine)
    anchor = _anchor(any_engine, tmp_path)
    with session_factory(any_engine)() as session, session.begin():
        record(session, session.get_one(Case, case_id), actor=SYSTEM, action="case.note")
    newer = _case_with_history(any_engine)
    report = verify(any_engine, anchor=anchor)
    assert report.ok, report.problems
    assert (report.anchored, report.cases, report.events) == (1, 2, 13)
    assert verify(any_engine, case_id=newer, anchor=anchor).ok


def test_an_altered_anchor_is_refused(any_engine: Engine, tmp_path: Path) -> None:
    _case_with_history(any_engine)
    path = _anchor(any_engine, tmp_path).path
    assert path is not None
    document = json.loads(path.read_text())
    document["heads"][0][1] = 3  # pretend the chain was shorter
    path.write_text(json.dumps(document))
    with pytest.raises(AnchorInvalid, match="heads do not make its root"):
        load_anchor(path)
    document["root"] = merkle_root([tuple(h) for h in document["heads"]])  # type: ignore[misc]
    path.write_text(json.dumps(document))
    with pytest.raises(AnchorInvalid, match="signature does not hold"):
        load_anchor(path)


def test_a_broken_store_is_not_anchored(any_engine: Engine, tmp_path: Path) -> None:
    case_id = _case_with_history(any_engine)
    with triggers_disabled(any_engine) as connection:
        connection.execute(
            text("DELETE FROM audit_events WHERE case_id = :c AND seq = 6"), {"c": case_id}
        )
    path, report = write_anchor(any_engine, tmp_path)
    assert path is None
    assert not report.ok
    assert newest_anchor(tmp_path) is None


def test_merkle_root_depends_on_every_head() -> None:
    heads = [(f"case-{n}", n + 1, f"{n:064x}") for n in range(5)]
    root = merkle_root(heads)
    assert merkle_root(list(reversed(heads))) == root  # the order read does not matter
    for n in range(5):
        changed = [*heads[:n], (heads[n][0], heads[n][1] + 1, heads[n][2]), *heads[n + 1 :]]
        assert merkle_root(changed) != root
    assert merkle_root(heads[:4]) != root


def test_keys_rotate_and_old_events_still_verify(
    any_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _case_with_history(any_engine)
    new_entry = "k-new:" + base64.b64encode(b"n" * 32).decode()
    monkeypatch.setenv("CLOSELOOP_AUDIT_KEYS", f"{new_entry},{TEST_AUDIT_KEYS}")
    reset_settings_cache()
    try:
        new = _case_with_history(any_engine)
        with session_factory(any_engine)() as session:
            assert {e.key_id for e in timeline(session, new)} == {"k-new"}
        assert verify(any_engine).ok
        report = verify(any_engine, keys=parse_keys(new_entry))
        assert [p.case_id for p in report.problems] == [old]
        assert "key 'test-key', which is not among the audit keys" in str(report.problems[0])
    finally:
        monkeypatch.undo()
        reset_settings_cache()


def test_a_missing_key_is_one_line_saying_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOSELOOP_AUDIT_KEYS")
    monkeypatch.setenv("CLOSELOOP_DATA_DIR", str(tmp_path))
    reset_settings_cache()
    try:
        with pytest.raises(AuditKeyError) as caught:
            keyring()
        message = user_error(caught.value)
        assert message is not None
        assert "\n" not in message
        assert "set CLOSELOOP_AUDIT_KEYS=id:base64key" in message
        assert ensure_key(tmp_path) == tmp_path / "audit-keys.env"
        assert keyring() == keyring_in(tmp_path)
        first = (tmp_path / "audit-keys.env").read_text()
        ensure_key(tmp_path)
        assert (tmp_path / "audit-keys.env").read_text() == first  # made once
    finally:
        monkeypatch.undo()
        reset_settings_cache()


@pytest.mark.parametrize(
    ("value", "says"),
    [("nokey", "is not `id:base64key`"), ("a:!!!", "not valid base64"),
     ("a:" + base64.b64encode(b"short").decode(), "shorter than 16 bytes"), (" , ", "is empty"),
     (f"{TEST_AUDIT_KEYS},{TEST_AUDIT_KEYS}", "given twice")],
)  # fmt: skip
def test_bad_keys_are_refused_saying_why(value: str, says: str) -> None:
    with pytest.raises(AuditKeyError, match=re.escape(says)):
        parse_keys(value)


def test_cli_anchor_then_verify_against_it(pg_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_url)
    try:
        case_id = _case_with_history(engine)
        runner = CliRunner()
        env = {"CLOSELOOP_DATABASE_URL": pg_url, "CLOSELOOP_DATA_DIR": str(tmp_path)}
        reset_settings_cache()
        made = runner.invoke(app, ["audit", "anchor"], env=env)
        assert made.exit_code == 0, made.output
        assert "anchored 1 chains (6 events)" in made.output
        checked = runner.invoke(app, ["audit", "verify"], env=env)
        assert checked.exit_code == 0, checked.output
        assert "1 anchored" in checked.output
        assert "against anchor anchor-" in checked.output
        with triggers_disabled(engine) as connection:
            connection.execute(text("DELETE FROM audit_events WHERE case_id = :c"), {"c": case_id})
            connection.execute(text("DELETE FROM cases WHERE id = :c"), {"c": case_id})
        failed = runner.invoke(app, ["audit", "verify"], env=env)
        assert failed.exit_code == 1
        assert (
            f"BROKEN  case {case_id}, chain head: anchored with 6 events, now gone" in failed.output
        )
        anchor = newest_anchor(tmp_path / "anchors")
        assert anchor is not None
        elsewhere = runner.invoke(app, ["audit", "verify", "--anchor", str(anchor)], env=env)
        assert elsewhere.exit_code == 1
    finally:
        engine.dispose()
        reset_settings_cache()


# --- The service's role: it cannot switch the guard off --------------------------------------


@pytest.fixture
def app_role_engine(pg_url: str) -> Iterator[Engine]:
    """An engine logged in as a new login role made a member of the service's role, the way
    production runs the api, worker and beat."""
    login = f"closeloop_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE closeloop_app"))
    engine = make_engine(make_url(pg_url).set(username=login).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP ROLE {login}"))
        admin.dispose()


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("ALTER TABLE audit_events DISABLE TRIGGER USER", "must be owner"),
        ("ALTER TABLE audit_events DISABLE TRIGGER audit_events_extend_chain", "must be owner"),
        ("ALTER TABLE cases DISABLE TRIGGER cases_no_delete", "must be owner"),
        ("TRUNCATE cases CASCADE", "permission denied"),
        ("TRUNCATE audit_events", "permission denied"),
        ("DELETE FROM cases", "permission denied"),
        ("DELETE FROM audit_events", "permission denied"),
        ("UPDATE audit_events SET action = 'x'", "permission denied"),
        ("DROP TRIGGER audit_events_extend_chain ON audit_events", "must be owner"),
    ],
)
def test_the_service_role_cannot_switch_the_guard_off(
    app_role_engine: Engine, statement: str, refusal: str
) -> None:
    case_id = _case_with_history(app_role_engine)  # and it does all the service's work
    with pytest.raises(DatabaseError, match=refusal), app_role_engine.begin() as connection:
        connection.execute(text(statement))
    report = verify(app_role_engine)
    assert report.ok, (case_id, report.problems)
    assert report.cases == 1


def test_the_role_is_made_once_however_many_databases_migrate_at_once(
    postgres_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Roles are cluster-wide: four databases migrated at once, all creating a role that does
    not exist yet, must all succeed (the losers of the race meet the winner's role)."""
    role = f"closeloop_race_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CLOSELOOP_DATABASE_APP_ROLE", role)
    admin = make_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    names = [f"closeloop_race_{uuid.uuid4().hex[:10]}" for _ in range(4)]
    server = make_url(postgres_server_url)
    urls = [server.set(database=n).render_as_string(hide_password=False) for n in names]
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        # Processes, not threads: Alembic's `op` and `context` are one per process.
        with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(upgrade, urls))
        assert [current_revision(url) for url in urls] == ["0013"] * 4
        with admin.connect() as connection:
            assert (
                connection.scalar(
                    text("SELECT count(*) FROM pg_roles WHERE rolname = :r AND NOT rolcanlogin"),
                    {"r": role},
                )
                == 1
            )
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
