"""The pipeline's speed on real PostgreSQL and Redis, beside an empty Celery task's.

    .venv/bin/python -m bench.pipeline [--rate 50] [--seconds 20] [--burst 1000]

Starts `closeloop api`, a pipeline worker (incidents, pipeline, timers; prefork, 2) and a
webhook worker (threads, 8) on a scratch database, with the example city's departments
pointed at a loopback receiver that verifies every signature. Then:

1. baseline: an empty task on the same broker, queue and pool: tasks per second, the CPU
   time a task costs (worker, this process publishing, Redis), and the latency of an empty
   four-task chain sent at the same steady rate;
2. steady: incidents filed over HTTP at --rate per second for --seconds, after 2 s of the
   same that are not measured (the warm-up: every process opens its connections and fills
   its caches): latency from the POST to `dispatched` (the audit event's time) and to the
   webhook's arrival, median and p99; and the CPU time each process spent, per case. With
   --dump FILE, each steady case's timeline is written there as JSON lines: when it
   was sent (seconds from the first), and how long after sending each of its audit events
   and its webhook came, to find where a slow case waited;
3. burst: --burst incidents filed as fast as 8 clients can: cases dispatched per second and
   webhooks received per second, start to last arrival, beside the CPU a case may cost at a
   third of the baseline's rate (the cores' seconds shared among that many cases); and the
   CPU time each process (and PostgreSQL's backends, and Redis) spent on it, per case
   (`bench/cpu.py`).

This process is both the hotline's clients and the departments' receiver, so its own pauses
would show as the pipeline's latency: a full garbage collection of its heap (every webhook
it has received) took 85-100 ms and was the whole p99 of some runs. Its collector is off
while it measures (`gc.freeze`, then `gc.disable`); the processes measured keep theirs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis
from sqlalchemy import make_url, select, text

from bench.cpu import CpuMeter
from bench.machine import describe
from tests.support import processes
from tests.support.pipeline import Pipeline, pipeline
from worker.db.migrate import upgrade
from worker.db.models import AuditEvent
from worker.db.session import make_engine, session_factory

INCIDENT = {
    "source": "hotline",
    "category": "water.pipe_burst",
    "title": "水管爆裂 burst water main",
    "location": {"district": "gulou"},
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    name = f"closeloop_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def collector_paused() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def baseline(
    p: Pipeline, count: int, rate: float, seconds: float
) -> tuple[float, dict[str, float], list[float]]:
    from celery import chain

    from bench.noop import noop

    worker = p.start_worker(
        "-A", "bench.noop", "worker", "-Q", "pipeline", "-c", "2", "-P", "prefork",
        "--loglevel", "WARNING", module="celery",
    )  # fmt: skip
    time.sleep(3)
    meter = CpuMeter({"empty-task worker": [worker.pid]}, alone={"this bench": os.getpid()})
    started = time.perf_counter()
    with meter:
        for _ in range(count):
            noop.delay()
        p.wait_idle(timeout=300)
    throughput = count / (time.perf_counter() - started)
    cpu_per_task = {name: 1000 * seconds / count for name, seconds in meter.seconds.items()}
    client = redis.Redis.from_url(p.env["CLOSELOOP_BROKER_URL"])
    sent: dict[str, float] = {}
    for _ in _paced(rate, seconds):
        chain_id = uuid.uuid4().hex
        sent[chain_id] = time.time()
        chain(noop.si(), noop.si(), noop.si(), noop.si(chain_id, last=True)).delay()
    p.wait_idle(timeout=120)
    done = client.hgetall(f"{p.env['CLOSELOOP_BROKER_KEY_PREFIX']}closeloop:bench:chains")
    latencies = [float(done[k.encode()]) - v for k, v in sent.items() if k.encode() in done]
    processes.stop(worker)
    p.workers.remove(worker)
    return throughput, cpu_per_task, latencies


def _paced(rate: float, seconds: float) -> Iterator[int]:
    interval, start = 1 / rate, time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield n


def file_one(api: str, headers: dict[str, str], http: httpx.Client) -> tuple[str, float]:
    sent = time.time()
    answer = http.post(
        f"{api}/v1/incidents", json={**INCIDENT, "external_id": uuid.uuid4().hex}, headers=headers
    )
    answer.raise_for_status()
    return answer.json()["case_id"], sent


def steady(
    p: Pipeline, api: str, headers: dict[str, str], rate: float, seconds: float
) -> dict[str, float]:
    filed: dict[str, float] = {}
    lock = threading.Lock()
    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(8) as pool:

        def one() -> None:
            case_id, sent = file_one(api, headers, http)
            with lock:
                filed[case_id] = sent

        futures = [pool.submit(one) for _ in _paced(rate, seconds)]
        for future in futures:
            future.result()
    _wait_received(p, set(filed))
    return filed


def _wait_received(p: Pipeline, case_ids: set[str]) -> None:
    def arrived() -> bool:
        return case_ids <= arrivals(p).keys()

    processes.wait_for(arrived, timeout=600, every=0.5, what="every webhook")


def arrivals(p: Pipeline) -> dict[str, float]:
    """When each case's webhook reached the receiver."""
    return {r.body["data"]["case"]["id"]: r.at for r in p.receiver.all()}


def latencies(p: Pipeline, filed: dict[str, float]) -> tuple[list[float], list[float]]:
    arrived = arrivals(p)
    with session_factory(p.engine)() as session:
        dispatched = dict(
            session.execute(
                select(AuditEvent.case_id, AuditEvent.at).where(
                    AuditEvent.action == "case.dispatched", AuditEvent.case_id.in_(list(filed))
                )
            ).all()
        )
    to_dispatch = [dispatched[c].timestamp() - t for c, t in filed.items()]
    to_webhook = [arrived[c] - t for c, t in filed.items()]
    return to_dispatch, to_webhook


def dump(p: Pipeline, filed: dict[str, float], path: Path) -> None:
    arrived = arrivals(p)
    events: dict[str, list[tuple[str, float]]] = {case_id: [] for case_id in filed}
    with session_factory(p.engine)() as session:
        rows = session.execute(
            select(AuditEvent.case_id, AuditEvent.action, AuditEvent.at)
            .where(AuditEvent.case_id.in_(list(filed)))
            .order_by(AuditEvent.case_id, AuditEvent.seq)
        )
        for case_id, action, at in rows:
            events[case_id].append((action, at.timestamp()))
    first = min(filed.values())
    with path.open("w") as out:
        for case_id, sent in sorted(filed.items(), key=lambda item: item[1]):
            timeline = {action: round(1000 * (at - sent), 1) for action, at in events[case_id]}
            timeline["webhook received"] = round(1000 * (arrived[case_id] - sent), 1)
            line = {"case": case_id, "sent_s": round(sent - first, 3), "ms": timeline}
            out.write(json.dumps(line) + "\n")


def burst(
    p: Pipeline, api: str, headers: dict[str, str], count: int, meter: CpuMeter
) -> tuple[float, float]:
    before = len(p.receiver.all())
    filed: list[str] = []
    started = time.time()
    with meter, httpx.Client(timeout=30) as http, ThreadPoolExecutor(8) as pool:
        for case_id, _ in pool.map(lambda _: file_one(api, headers, http), range(count)):
            filed.append(case_id)
        _wait_received(p, set(filed))
    last = max(r.at for r in p.receiver.all()[before:])
    with session_factory(p.engine)() as session:
        last_dispatch = session.scalar(
            select(AuditEvent.at)
            .where(AuditEvent.action == "case.dispatched")
            .order_by(AuditEvent.at.desc())
        )
    assert last_dispatch is not None
    return count / (last_dispatch.timestamp() - started), count / (last - started)


def side_by_side(
    steady: dict[str, float], steady_cases: int, burst: dict[str, float], burst_cases: int
) -> list[str]:
    if not burst:
        return ["  (CPU by process: needs Linux's /proc)"]
    rows = sorted(burst, key=lambda name: -burst[name])
    lines = [
        f"  {name:32s} {1000 * steady.get(name, 0) / steady_cases:6.1f} ms"
        f" {1000 * burst[name] / burst_cases:8.1f} ms"
        for name in rows
    ]
    total_steady = 1000 * sum(steady.values()) / steady_cases
    total_burst = 1000 * sum(burst.values()) / burst_cases
    lines.append(f"  {'all of these':32s} {total_steady:6.1f} ms {total_burst:8.1f} ms")
    return lines


def ms(values: list[float]) -> str:
    median, p99 = statistics.median(values) * 1000, percentile(values, 99) * 1000
    return f"median {median:7.1f} ms   p99 {p99:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--baseline-tasks", type=int, default=3000)
    parser.add_argument("--dump", type=Path, help="write each steady case's timeline here")
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(describe())
    os.environ.setdefault("CLOSELOOP_LOG_LEVEL", "WARNING")
    with (
        scratch_database(args.server) as url,
        tempfile.TemporaryDirectory() as folder,
        pipeline(url, args.redis, Path(folder), log_level="WARNING") as p,
        collector_paused(),
    ):
        tasks_per_s, task_cpu, chain_latency = baseline(
            p, args.baseline_tasks, args.rate, args.seconds
        )
        pipeline_worker = p.start_worker(
            "worker", "--queues", "incidents,pipeline,timers", "--concurrency", "2"
        )
        webhook_worker = p.start_worker(
            "worker", "--queues", "webhooks", "--concurrency", "8", "--pool", "threads"
        )
        api = p.start_api()
        meter = CpuMeter(
            {
                "API": [p.workers[-1].pid],
                "pipeline worker": [pipeline_worker.pid],
                "webhook worker": [webhook_worker.pid],
            },
            alone={"this bench (clients, receiver)": os.getpid()},
            database=make_url(url).database,
        )
        headers = p.token("hotline")
        time.sleep(3)
        # Not measured: the first cases open every process's connections and fill its caches.
        steady(p, api, headers, args.rate, min(args.seconds, 2.0))
        with meter:
            filed = steady(p, api, headers, args.rate, args.seconds)
        steady_cpu = dict(meter.seconds)
        to_dispatch, to_webhook = latencies(p, filed)
        if args.dump:
            dump(p, filed, args.dump)
        dispatched_per_s, delivered_per_s = burst(p, api, headers, args.burst, meter)
    print("\nbaseline: an empty task, same broker, queue and prefork pool of 2")
    print(f"  throughput                 {tasks_per_s:8.0f} tasks/s")
    if task_cpu:
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in task_cpu.items())
        print(f"  CPU per task               {sum(task_cpu.values()):8.2f} ms  ({parts})")
    print(f"  4-task chain at {args.rate:.0f}/s      {ms(chain_latency)}")
    steady_run = f"{args.rate:.0f}/s for {args.seconds:.0f} s, {len(filed)} incidents over HTTP"
    print(f"\ncloseloop at {steady_run}")
    print(f"  intake -> dispatched       {ms(to_dispatch)}")
    print(f"  intake -> webhook received {ms(to_webhook)}")
    print(f"\nburst of {args.burst} incidents (8 HTTP clients)")
    share = dispatched_per_s / tasks_per_s
    print(
        f"  dispatched                 {dispatched_per_s:8.1f} cases/s  ({share:.2f} of baseline)"
    )
    print(f"  webhooks received          {delivered_per_s:8.1f} cases/s")
    cores = os.cpu_count() or 1
    budget = 1000 * cores / (tasks_per_s / 3)
    print(
        f"  a third of the baseline is {tasks_per_s / 3:.0f} cases/s: at most {budget:.1f} ms"
        f" of CPU a case, all processes, on {cores} cores"
    )
    print(f"\nwhere the CPU went, by process, per case: at {args.rate:.0f}/s and in the burst")
    print("\n".join(side_by_side(steady_cpu, len(filed), meter.seconds, args.burst)))


if __name__ == "__main__":
    main()
