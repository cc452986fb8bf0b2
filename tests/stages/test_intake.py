"""Intake on both stores: a filing becomes one case in `received` with its first event and
reporter; a repeat (same idempotency key, or same source and external id) finds that case
and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from tests.support.factories import HOTLINE, incident
from worker.db.models import AuditEvent, Case, OutboxMessage, Reporter
from worker.db.session import session_factory
from worker.idempotency import Key, KeyReused
from worker.ledger.audit import verify
from worker.stages.intake import Accepted, accept_incident

REPORTER = {"name": "李雷", "phone": "+86 139 0000 0001", "email": "lilei@example.cn"}


def _file(engine: Engine, key: str | None = None, **overrides: object) -> Accepted:
    with session_factory(engine)() as session, session.begin():
        accepted = accept_incident(
            session,
            incident(**overrides),
            actor=HOTLINE,
            idempotency_key=Key.of_token("token-1", key),
        )
        # The new case is in the session as if loaded: what intake set, and what the
        # database defaulted, both read back.
        assert (accepted.case.state, accepted.case.version) == ("received", 1)
        assert accepted.case.reporter_count == 1
        return accepted


def _count(engine: Engine, model: type) -> int:
    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_filing_opens_a_case_with_its_first_event_and_reporter(any_engine: Engine) -> None:
    accepted = _file(any_engine, external_id="HL-1", reporter=REPORTER)
    assert accepted.created
    with session_factory(any_engine)() as session:
        case = session.get_one(Case, accepted.case.id)
        assert (case.state, case.audit_seq, case.category) == ("received", 1, "water.pipe_burst")
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id))
        assert (event.action, event.to_state, event.hash) == (
            "case.received",
            "received",
            case.audit_head,
        )
        [reporter] = session.scalars(select(Reporter).where(Reporter.case_id == case.id))
        assert (reporter.name, reporter.phone, reporter.email) == tuple(REPORTER.values())
        assert session.scalar(select(OutboxMessage.task_name)) == "closeloop.pipeline.monitor"
    assert verify(any_engine, case_id=accepted.case.id).ok


def test_a_repeat_finds_the_first_case_and_writes_nothing(any_engine: Engine) -> None:
    first = _file(any_engine, key="key-1", external_id="HL-2", reporter=REPORTER)
    written = [_count(any_engine, m) for m in (Case, AuditEvent, Reporter, OutboxMessage)]
    by_key = _file(any_engine, key="key-1", external_id="HL-2", reporter=REPORTER)
    by_external_id = _file(any_engine, external_id="HL-2", reporter=REPORTER)
    assert (by_key.created, by_external_id.created) == (False, False)
    assert by_key.case.id == by_external_id.case.id == first.case.id
    assert [_count(any_engine, m) for m in (Case, AuditEvent, Reporter, OutboxMessage)] == written
    elsewhere = _file(any_engine, source="web", external_id="HL-2")
    assert elsewhere.created
    assert elsewhere.case.id != first.case.id


def test_the_same_key_with_another_incident_is_refused_on_both_stores(any_engine: Engine) -> None:
    _file(any_engine, key="key-2", external_id="HL-3")
    written = [_count(any_engine, m) for m in (Case, AuditEvent, OutboxMessage)]
    with pytest.raises(KeyReused, match="already used for a different incident"):
        _file(any_engine, key="key-2", external_id="HL-4")
    assert [_count(any_engine, m) for m in (Case, AuditEvent, OutboxMessage)] == written
