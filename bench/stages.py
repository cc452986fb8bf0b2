"""CPU per case, stage by stage, in one process: what closeloop's own code costs.

    .venv/bin/python -m bench.stages [--cases 100] [--profile DIR]

`bench.pipeline` measures the whole pipeline, where two cores are shared by five processes and
the figures wander with the machine's load. This one runs each stage of a case directly, one
after another, in this process, on a scratch PostgreSQL database with the example city (the
same setup as `bench.pipeline`, Redis included) and no Celery worker:

- file: `POST /v1/incidents` through FastAPI's test client (the client's own work counts too,
  and the event loop runs in this process instead of uvicorn's);
- monitor + dispatch: the monitor task's body (triage, then dispatch in its own transaction);
- webhook send: one delivery's claim, signed POST to a loopback receiver and record (the
  receiver runs in this process, so its signature check counts too).

Each stage runs --rounds times --cases cases, in turns; the round with the least CPU is shown
(the machine's speed wanders; the least is the steadiest figure), with the spread. For each:
CPU time per case (all of this process's threads), wall time, SQL statements per case, and
Python function calls per case (counted, so the same on any machine: the figure to compare
small changes by; not for the file stage, whose work runs on the test client's threads).
Beside them, the baseline: a transaction of bare `SELECT 1` statements through the same engine,
as many as the stage sends (the floor of driver and round trips for that count).

For before/after, run this file from a worktree of the earlier commit too, in turns.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from pathlib import Path

from sqlalchemy import Engine, event, select, text

from bench.machine import describe
from bench.pipeline import INCIDENT, scratch_database
from tests.support.pipeline import pipeline


@dataclass
class Figures:
    cpu_ms: float
    wall_ms: float
    statements: float


def measure(engine: Engine, calls: Iterator[Callable[[], object]], count: int) -> Figures:
    statements = 0

    def note(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", note)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            next(calls)()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return Figures(cpu / count * 1000, wall / count * 1000, statements / count)


def python_calls(
    calls: Iterator[Callable[[], object]], count: int, dump: Path | None = None
) -> float:
    """Python function calls per case (cProfile's count, C functions included): unlike time,
    the same on any machine and under any load, so small changes show. With `dump`, the
    profile is also written there, for `python -m pstats` or snakeviz; its times are this
    process's CPU time, so waiting for PostgreSQL or the receiver does not show as cost."""
    profile = cProfile.Profile(time.process_time) if dump else cProfile.Profile()
    profile.enable()
    for _ in range(count):
        next(calls)()
    profile.disable()
    if dump is not None:
        profile.dump_stats(dump)
    return pstats.Stats(profile).total_calls / count  # type: ignore[attr-defined,no-any-return]


def bare_statements(engine: Engine, count: int) -> Callable[[], object]:
    def run() -> None:
        with engine.begin() as connection:
            for _ in range(count):
                connection.execute(text("SELECT 1"))

    return run


def _calls(count: float | None) -> str:
    return "-" if count is None else f"{count:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also write each stage's counted round as a cProfile file in DIR",
    )
    args = parser.parse_args()
    print(describe())
    warm_up, count = 20, args.cases
    with (
        scratch_database(args.server) as url,
        tempfile.TemporaryDirectory() as folder,
        pipeline(url, args.redis, Path(folder), log_level="WARNING") as p,
        ExitStack() as stack,
    ):
        logging.disable(logging.INFO)
        from fastapi.testclient import TestClient

        from worker.api.app import create_app
        from worker.db.models import Delivery
        from worker.db.session import get_engine, transaction
        from worker.messaging.outbox import flush_marks
        from worker.tasks.pipeline import monitor
        from worker.webhooks import send_delivery

        engine = get_engine()
        headers = p.token("hotline")
        # Entered, so that one event loop serves every request (without, each request starts
        # a thread and a loop of its own, and that would be counted as the API's work).
        client = stack.enter_context(TestClient(create_app()))
        filed: list[str] = []

        def file() -> None:
            body = {**INCIDENT, "external_id": uuid.uuid4().hex}
            answer = client.post("/v1/incidents", json=body, headers=headers)
            answer.raise_for_status()
            filed.append(answer.json()["case_id"])

        def files() -> Iterator[Callable[[], object]]:
            while True:
                yield file

        def monitors() -> Iterator[Callable[[], object]]:
            for case_id in filed:
                yield partial(monitor.run, case_id)

        def sends() -> Iterator[Callable[[], object]]:
            while True:  # the deliveries the cases monitored so far queued, and not yet sent
                flush_marks()
                with transaction() as session:
                    queued = session.scalars(
                        select(Delivery.id)
                        .where(Delivery.attempts == 0)
                        .order_by(Delivery.created_at)
                    ).all()
                for delivery_id in queued:
                    yield partial(send_delivery, engine, delivery_id)

        stages = {"file": files(), "monitor + dispatch": monitors(), "webhook send": sends()}
        for calls in stages.values():
            measure(engine, calls, warm_up)  # opens connections, fills caches
        rounds: dict[str, list[Figures]] = {name: [] for name in stages}
        for _ in range(args.rounds):
            for name, calls in stages.items():
                rounds[name].append(measure(engine, calls, count))
        # The file stage runs on the test client's threads, which the profiler does not see.
        measure(engine, stages["file"], count)  # cases for the counted round
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        calls_per_case = {
            name: python_calls(
                calls,
                count,
                args.profile / f"{name.replace(' + ', '-').replace(' ', '-')}.prof"
                if args.profile
                else None,
            )
            for name, calls in stages.items()
            if name != "file"
        }
        flush_marks()
        results = {name: min(figures, key=lambda f: f.cpu_ms) for name, figures in rounds.items()}
        baselines = {
            name: min(
                (
                    measure(engine, repeat(bare_statements(engine, round(f.statements))), count)
                    for _ in range(args.rounds)
                ),
                key=lambda f: f.cpu_ms,
            )
            for name, f in results.items()
        }
    print(
        f"\n{args.rounds} rounds of {count} cases, each stage run directly in this process (no "
        "Celery);\nthe round with the least CPU per case"
    )
    print(
        f"  {'stage':<20}{'CPU/case':>10}{'wall/case':>11}{'statements':>12}{'Python calls':>14}"
        "   baseline: as many bare SELECT 1s"
    )
    for name, f in results.items():
        b = baselines[name]
        print(
            f"  {name:<20}{f.cpu_ms:8.2f} ms{f.wall_ms:8.2f} ms{f.statements:12.1f}"
            f"{_calls(calls_per_case.get(name)):>14}"
            f"   {b.cpu_ms:5.2f} ms CPU, {b.wall_ms:5.2f} ms wall"
        )
    spread = {n: max(f.cpu_ms for f in r) - min(f.cpu_ms for f in r) for n, r in rounds.items()}
    print(
        "  CPU per case, slowest round minus quickest: "
        + ", ".join(f"{n} {v:.2f} ms" for n, v in spread.items())
    )
    total = sum(f.cpu_ms for f in results.values())
    print(f"  {'all three':<20}{total:8.2f} ms")


if __name__ == "__main__":
    main()
