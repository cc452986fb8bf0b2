"""How fast the supervisors' metrics answer on a year of a big city: 1,000,000 cases.

Seeds a scratch PostgreSQL database (created beside --server, dropped after) with N cases
filed over the last 365 days (default 1,000,000: about 82,000 in any 30 days), their lead
tasks (a tenth of them returned once and routed again), the citizens' callbacks and three
audit events per case, all with COPY. Then times what `GET /v1/metrics` runs for the last
30 days by department and by district (the whole report: every query, and the totals),
several times each, beside a baseline: a bare count of the same window's cases.

    .venv/bin/python -m bench.metrics --cases 1000000 \
        --server postgresql+psycopg://postgres@127.0.0.1:5432/test [--keep]
    .venv/bin/python -m bench.metrics --reuse URL   # time a database a --keep run left

Each report is timed with its queries run in turn and run at once on one snapshot
(CLOSELOOP_METRICS_PARALLEL_QUERIES).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import make_url, text

from bench.machine import describe
from worker.config import get_settings, reset_settings_cache
from worker.db.migrate import upgrade
from worker.db.session import make_engine, session_factory
from worker.metrics.definitions import GroupBy
from worker.metrics.report import build_report

DAYS = 365
BATCH = 20_000
DEPARTMENTS = [f"dept{n:02d}" for n in range(20)]
DISTRICTS = ["gulou", "xuanwu", "qinhuai", "jianye", "yuhua", "qixia", "jiangning", "pukou"]
CATEGORIES = [f"group{n % 8}.kind{n:02d}" for n in range(50)]
OPEN = ["received", "triaged", "dispatched", "accepted", "in_progress"]


def _t(moment: datetime | None) -> str:
    return "\\N" if moment is None else moment.isoformat()


def _s(value: str | None) -> str:
    return "\\N" if value is None else value


class Writer:
    """One batch of rows per table, as COPY text."""

    def __init__(self) -> None:
        self.cases, self.tasks = io.StringIO(), io.StringIO()
        self.callbacks, self.events = io.StringIO(), io.StringIO()

    def case(self, **c: Any) -> None:
        self.cases.write(
            f"{c['id']}\t{c['state']}\t1\tbench\t{c['category']}\tbench case\t\tnormal\t{{}}\t[]\t"
            f"{_t(c['received'])}\t{_t(c['received'])}\t[]\t{'t' if c['overdue'] else 'f'}\t0\t1\t"
            f"{c['returns']}\t{c['rounds']}\t[]\tf\t0\t3\t{c['head']}\t{c['district']}\t"
            f"{_s(c['lead'])}\t{_t(c['ack_due'])}\t{_t(c['resolve_due'])}\t"
            f"{_t(c['dispatched'])}\t{_t(c['resolved'])}\t{_t(c['closed'])}\t"
            f"{_s(c['merged_into'])}\n"
        )

    def task(self, case_id: str, department: str, state: str, round_: int, **t: Any) -> None:
        self.tasks.write(
            f"{uuid.uuid4()}\t{case_id}\t{department}\tlead\t{state}\t1\t{round_}\t"
            f"{_t(t['ack_due'])}\t{_t(t['resolve_due'])}\t{_t(t['acked'])}\t"
            f"{_t(t['resolved'])}\t{_t(t['created'])}\t{_t(t['created'])}\n"
        )

    def callback(
        self, case_id: str, solved: bool | None, satisfied: bool | None, at: datetime
    ) -> None:
        def b(value: bool | None) -> str:
            return "\\N" if value is None else ("t" if value else "f")

        outcome = "no_answer" if solved is None else ("satisfied" if satisfied else "unsatisfied")
        self.callbacks.write(
            f"{case_id}\t{b(solved)}\t{b(satisfied)}\t\t{outcome}\tbench\t{_t(at)}\n"
        )

    def events_for(self, case_id: str, moves: list[tuple[datetime, str]]) -> str:
        # Chained like the audit store's, over a short stand-in for the canonical encoding:
        # the metrics never read these; they are here so the tables have their real size.
        head = "0" * 64
        for seq, (at, state) in enumerate(moves, start=1):
            digest = hashlib.sha256(f"{head}{case_id}{seq}{state}".encode()).hexdigest()
            self.events.write(
                f"{case_id}\t{seq}\t{_t(at)}\tsystem\tbench\tcase.{state}\t\\N\t{state}\t{{}}\t"
                f"bench\t{head}\t{digest}\n"
            )
            head = digest
        return head


def _one_case(n: int, now: datetime, rng: random.Random, out: Writer) -> None:
    case_id = str(uuid.UUID(int=n + 1))
    received = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
    age_hours = (now - received).total_seconds() / 3600
    category, district = rng.choice(CATEGORIES), rng.choice(DISTRICTS)
    lead = DEPARTMENTS[(CATEGORIES.index(category) * 7 + DISTRICTS.index(district)) % 20]
    roll = rng.random()
    case: dict[str, Any] = dict(
        id=case_id, category=category, district=district, received=received, lead=lead,
        overdue=False, returns=0, rounds=1, ack_due=None, resolve_due=None, dispatched=None,
        resolved=None, closed=None, merged_into=None,
    )  # fmt: skip
    if roll < 0.03 and n > 0:
        case.update(state="merged", lead=None, rounds=0, merged_into=str(uuid.UUID(int=n)))
    elif roll < 0.05:
        case.update(state="cancelled", lead=None, rounds=0)
    else:
        _routed(case, age_hours, rng, out)
    moves = [(received, "received"), (received + timedelta(minutes=1), "triaged")]
    if case["dispatched"] is not None:
        moves = [*moves[:1], (case["dispatched"], "dispatched")]
    moves.append((received + timedelta(minutes=5), case["state"]))
    case["head"] = out.events_for(case_id, moves)
    out.case(**case)


def _routed(case: dict[str, Any], age_hours: float, rng: random.Random, out: Writer) -> None:
    received: datetime = case["received"]
    dispatched = received + timedelta(minutes=rng.uniform(1, 10))
    ack_due, resolve_due = dispatched + timedelta(hours=2), dispatched + timedelta(hours=72)
    rounds = 2 if rng.random() < 0.1 else 1
    if rounds == 2:  # the first department returned it
        first = rng.choice(DEPARTMENTS)
        out.task(case["id"], first, "returned", 1, ack_due=ack_due, resolve_due=resolve_due,
                 acked=None, resolved=None, created=dispatched)  # fmt: skip
    hours_to_resolve = rng.lognormvariate(3.0, 0.9)  # median about 20 h, a long tail
    acked = dispatched + timedelta(hours=rng.expovariate(1.2))
    resolved = dispatched + timedelta(hours=hours_to_resolve)
    still_open = age_hours < hours_to_resolve + 24 or rng.random() < 0.01
    state = (
        rng.choice(OPEN[2:]) if still_open else ("closed" if rng.random() < 0.97 else "resolved")
    )
    task_state = {"dispatched": "assigned", "accepted": "accepted", "in_progress": "in_progress"}
    out.task(
        case["id"], case["lead"], task_state.get(state, "resolved"), rounds, ack_due=ack_due,
        resolve_due=resolve_due, acked=None if state == "dispatched" else acked,
        resolved=None if still_open else resolved, created=dispatched,
    )  # fmt: skip
    closed = None if state != "closed" else resolved + timedelta(hours=rng.uniform(2, 48))
    case.update(
        state=state, rounds=rounds, returns=rounds - 1, ack_due=ack_due, resolve_due=resolve_due,
        dispatched=dispatched, resolved=None if still_open else resolved, closed=closed,
        overdue=still_open and resolve_due < received + timedelta(hours=age_hours),
    )  # fmt: skip
    if closed is not None and rng.random() < 0.8:
        answered = rng.random() < 0.9
        solved = (rng.random() < 0.85) if answered else None
        satisfied = (rng.random() < 0.75) if answered else None
        out.callback(case["id"], solved, satisfied, closed - timedelta(hours=1))


def _seed(url: str, cases: int, now: datetime) -> None:
    import psycopg

    rng = random.Random(12345)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        for first in range(0, cases, BATCH):
            out = Writer()
            for n in range(first, min(first + BATCH, cases)):
                _one_case(n, now, rng, out)
            _copy(cursor, CASES_COPY, out.cases)
            _copy(cursor, TASKS_COPY, out.tasks)
            _copy(cursor, CALLBACKS_COPY, out.callbacks)
            _copy(cursor, EVENTS_COPY, out.events)
        connection.commit()


CASES_COPY = (
    "COPY cases (id, state, version, source, category, title, description, priority, attributes,"
    " attachments, received_at, updated_at, route_path, overdue, escalation_level,"
    " reporter_count, return_count, dispatch_round, escalation_plan, share_contact, reopen_count,"
    " audit_seq, audit_head, district, lead_department, acknowledge_due_at, resolve_due_at,"
    " dispatched_at, resolved_at, closed_at, merged_into_id) FROM STDIN"
)
TASKS_COPY = (
    "COPY tasks (id, case_id, department, role, state, version, dispatch_round,"
    " acknowledge_due_at, resolve_due_at, acknowledged_at, resolved_at, created_at, updated_at)"
    " FROM STDIN"
)
CALLBACKS_COPY = (
    "COPY callbacks (case_id, solved, satisfied, comment, outcome, recorded_by, recorded_at)"
    " FROM STDIN"
)
EVENTS_COPY = (
    "COPY audit_events (case_id, seq, at, actor_kind, actor_id, action, from_state, to_state,"
    " data, rules_version, prev_hash, hash) FROM STDIN"
)


def _copy(cursor: Any, statement: str, buffer: io.StringIO) -> None:
    with cursor.copy(statement) as copy:
        copy.write(buffer.getvalue())


def _timed(what: Callable[[], object], runs: int) -> tuple[float, float]:
    what()  # the first run warms the caches; production's are warm too
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        what()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7, help="Timed runs of each query.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database after.")
    parser.add_argument(
        "--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="A PostgreSQL URL; a scratch database is created beside it and dropped after.",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", metavar="URL", help="Time an already seeded database (one --keep left)."
    )
    args = parser.parse_args()
    print(describe())
    if args.reuse:
        engine = make_engine(args.reuse)
        _bench(engine, datetime.now(UTC).replace(microsecond=0), args.runs)
        engine.dispose()
        return
    admin = make_engine(args.server, isolation_level="AUTOCOMMIT")
    name = f"closeloop_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        now = datetime.now(UTC).replace(microsecond=0)
        started = time.perf_counter()
        _seed(url, args.cases, now)
        engine = make_engine(url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # Visibility map and statistics as a long-running database has them.
            connection.execute(text("VACUUM ANALYZE"))
            sizes = {
                table: connection.scalar(text(f"SELECT count(*) FROM {table}"))
                for table in ("cases", "tasks", "callbacks", "audit_events")
            }
            version = connection.scalar(text("SHOW server_version"))
        seeded = time.perf_counter() - started
        print(f"PostgreSQL {version}; seeded with COPY and analysed in {seeded:.0f} s:")
        print("  " + ", ".join(f"{n:,} {table}" for table, n in sizes.items()))
        _bench(engine, now, args.runs)
        engine.dispose()
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _bench(engine: Any, now: datetime, runs: int) -> None:
    since, zone = now - timedelta(days=30), ZoneInfo("Asia/Shanghai")
    with engine.connect() as connection:
        window = connection.scalar(
            text("SELECT count(*) FROM cases WHERE received_at >= :s AND received_at < :u"),
            {"s": since, "u": now},
        )
    print(f"window: the last 30 days, {window:,} cases; {runs} timed runs each (after one warm-up)")
    with session_factory(engine)() as session:

        def baseline() -> object:
            return session.scalar(
                text("SELECT count(*) FROM cases WHERE received_at >= :s AND received_at < :u"),
                {"s": since, "u": now},
            )

        rows = [("baseline: count(*) of the window's cases", baseline)]
        for by in (GroupBy.department, GroupBy.district):
            for parallel in (1, get_settings().metrics_parallel_queries):

                def report(by: GroupBy = by, parallel: int = parallel) -> object:
                    os.environ["CLOSELOOP_METRICS_PARALLEL_QUERIES"] = str(parallel)
                    reset_settings_cache()
                    return build_report(session, since, now, by, zone)

                how = "queries in turn" if parallel == 1 else f"{parallel} at once"
                rows.append((f"GET /v1/metrics?since=30d&by={by.value} ({how})", report))
        for label, what in rows:
            median, worst = _timed(what, runs)
            print(f"  {label:<58} median {median:7.1f} ms   max {worst:7.1f} ms")


if __name__ == "__main__":
    main()
