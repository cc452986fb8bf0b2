"""How fast `closeloop audit verify` checks the audit store, and that its memory stays flat.

Seeds a scratch PostgreSQL database with N events (default 1,000,000) in chains of 10, written
with COPY, then runs the verifier and, as the baseline, a plain streaming read of the same
rows (what the database and driver alone cost). Prints events per second for both and the
process's peak memory before and after verification.

    .venv/bin/python -m bench.audit_verify --events 1000000 \
        --server postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import make_url, select, text

from bench.machine import describe
from worker.db.migrate import upgrade
from worker.db.models import AuditEvent
from worker.db.session import make_engine
from worker.ledger.audit import GENESIS, chain_hash, verify
from worker.ledger.audit_keys import keyring

EVENTS_PER_CASE = 10
STATES = ["received", "triaged", "dispatched", "accepted", "in_progress", "resolved", "closed"]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _seed(url: str, events: int) -> None:
    import psycopg

    start = datetime(2026, 1, 1, tzinfo=UTC)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        for first in range(0, events // EVENTS_PER_CASE, 10_000):
            cases, rows = io.StringIO(), io.StringIO()
            for n in range(first, min(first + 10_000, events // EVENTS_PER_CASE)):
                _one_case(n, start, cases, rows)
            _copy(
                cursor,
                "COPY cases (id, state, version, source, category, title, description, priority,"
                " attributes, attachments, received_at, updated_at, route_path, overdue,"
                " escalation_level, reporter_count, return_count, dispatch_round, escalation_plan,"
                " share_contact, reopen_count, audit_seq,"
                " audit_head) FROM STDIN",
                cases,
            )
            _copy(
                cursor,
                "COPY audit_events (case_id, seq, at, actor_kind, actor_id, action, from_state,"
                " to_state, data, rules_version, prev_hash, key_id, hash) FROM STDIN",
                rows,
            )
        connection.commit()


def _copy(cursor: Any, statement: str, buffer: io.StringIO) -> None:
    with cursor.copy(statement) as copy:
        copy.write(buffer.getvalue())


def _one_case(n: int, start: datetime, cases: io.StringIO, rows: io.StringIO) -> None:
    case_id = str(uuid.UUID(int=n + 1))
    at = start + timedelta(seconds=n)
    head = GENESIS
    keys = keyring()
    for seq in range(1, EVENTS_PER_CASE + 1):
        state = STATES[min(seq - 1, len(STATES) - 1)]
        data = {"n": n, "note": "燃气泄漏 gas leak"}
        fields = dict(
            case_id=case_id, seq=seq, at=at + timedelta(minutes=seq), actor_kind="system",
            actor_id="bench", action=f"case.{state}", from_state=None, to_state=state,
            data=data, rules_version="bench", prev_hash=head, key_id=keys.current_id,
        )  # fmt: skip
        digest = chain_hash(keys.current, **fields)
        rows.write(
            f"{case_id}\t{seq}\t{fields['at'].isoformat()}\tsystem\tbench\tcase.{state}\t\\N\t"  # type: ignore[union-attr]
            f"{state}\t{json.dumps(data, ensure_ascii=False)}\tbench\t{head}\t{keys.current_id}\t"
            f"{digest}\n"
        )
        head = digest
    cases.write(
        f"{case_id}\tclosed\t1\tbench\twater.pipe_burst\tbench\t\tnormal\t{{}}\t[]\t"
        f"{at.isoformat()}\t{at.isoformat()}\t[]\tf\t0\t1\t0\t1\t[]\tf\t0\t{EVENTS_PER_CASE}\t{head}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="A PostgreSQL URL; a scratch database is created beside it and dropped after.",
    )  # fmt: skip
    args = parser.parse_args()
    print(describe())
    admin = make_engine(args.server, isolation_level="AUTOCOMMIT")
    name = f"closeloop_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        started = time.perf_counter()
        _seed(url, args.events)
        print(f"seeded {args.events:,} events with COPY in {time.perf_counter() - started:.1f} s")
        engine = make_engine(url)
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
        baseline_rows, started = 0, time.perf_counter()
        with engine.connect() as connection:
            query = select(AuditEvent.case_id, AuditEvent.seq, AuditEvent.data, AuditEvent.hash)
            stream = connection.execution_options(stream_results=True, yield_per=5000)
            for _ in stream.execute(query.order_by(AuditEvent.case_id, AuditEvent.seq)):
                baseline_rows += 1
        baseline = baseline_rows / (time.perf_counter() - started)
        before = _peak_mib()
        report = verify(engine)
        assert report.ok, report.problems[:3]
        print(f"baseline  streaming read only: {baseline:>12,.0f} rows/s")
        print(
            f"verify    hash chains checked: {report.events_per_second:>12,.0f} events/s"
            f"  ({report.events:,} events, {report.cases:,} cases, {report.seconds:.1f} s)"
        )
        print(f"peak memory: {before:.0f} MiB before verify, {_peak_mib():.0f} MiB after")
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
