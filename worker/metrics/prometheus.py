"""Prometheus metrics: counters and stage timings kept by each process, and gauges read from
the database when the API is scraped.

Per process (API, workers): cases received and closed, webhook delivery outcomes, the time
each pipeline stage takes. A worker started with `--metrics-port` serves its own (all its
pool processes together, in prometheus_client's multiprocess mode); the API serves its own
on `GET /metrics`, with the database's gauges: tasks overdue, cases open and dead
deliveries by department, the same for every API process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session

from worker.clock import now
from worker.db.models import Case, Delivery, Task
from worker.ledger.lifecycle import LIVE_TASK_STATES, OPEN_CASE_STATES

RECEIVED = Counter(
    "closeloop_cases_received", "Cases filed (duplicates included).", ["category", "district"]
)
CLOSED = Counter(
    "closeloop_cases_closed", "Cases closed (again, after a reopening).", ["department"]
)
DELIVERIES = Counter(
    "closeloop_webhook_deliveries",
    "Webhook delivery outcomes: delivered, failed (to be retried), gone (410), dead, replayed.",
    ["outcome"],
)
STAGE_SECONDS = Histogram(
    "closeloop_stage_duration_seconds",
    "Time each pipeline stage (Celery task) takes, by its outcome.",
    ["stage", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def count(kind: str, labels: dict[str, str]) -> None:
    {"received": RECEIVED, "closed": CLOSED, "delivery": DELIVERIES}[kind].labels(**labels).inc()


def observe_stage(stage: str, outcome: str, seconds: float) -> None:
    STAGE_SECONDS.labels(stage=stage, outcome=outcome).observe(seconds)


def process_metrics() -> bytes:
    """This process's metrics, or with a multiprocess folder, those of all its processes."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


class DatabaseGauges(Collector):
    """Gauges counted in the database at scrape time, reused for `cache_seconds` so that
    several Prometheus servers (or a fast scrape interval) cost one set of queries."""

    def __init__(self, engine: Callable[[], Engine], cache_seconds: float) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self._cache_seconds:
                self._families = self._read()
                self._read_at = time.monotonic()
            return list(self._families)

    def _read(self) -> list[Metric]:
        with Session(self._engine()) as session:
            return [
                _gauge(name, documentation, count(session))
                for name, (documentation, count) in DATABASE_GAUGES.items()
            ]


def _gauge(name: str, documentation: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["department"])
    for department, value in sorted(values.items()):
        family.add_metric([department], value)
    return family


def _by_department(session: Session, query: Any) -> dict[str, int]:
    return {department or "": int(n) for department, n in session.execute(query)}


def _overdue_tasks(session: Session) -> dict[str, int]:
    moment = now()
    late = or_(
        and_(Task.state == "assigned", Task.acknowledge_due_at < moment),
        Task.resolve_due_at < moment,
    )
    live = Task.state.in_([state.value for state in LIVE_TASK_STATES])
    query = select(Task.department, func.count()).where(live, late).group_by(Task.department)
    return _by_department(session, query)


def _open_cases(session: Session) -> dict[str, int]:
    open_states = Case.state.in_([state.value for state in OPEN_CASE_STATES])
    query = select(Case.lead_department, func.count()).where(open_states)
    return _by_department(session, query.group_by(Case.lead_department))


def _dead_deliveries(session: Session) -> dict[str, int]:
    query = select(Delivery.department, func.count()).where(Delivery.state == "dead")
    return _by_department(session, query.group_by(Delivery.department))


DATABASE_GAUGES: dict[str, tuple[str, Callable[[Session], dict[str, int]]]] = {
    "closeloop_tasks_overdue": (
        "Live tasks past their acknowledge (unacknowledged) or resolve deadline.",
        _overdue_tasks,
    ),
    "closeloop_cases_open": (
        "Open cases (the backlog) by lead department; not yet routed: empty.",
        _open_cases,
    ),
    "closeloop_deliveries_dead": (
        "Dead-letter webhook deliveries waiting for a replay.",
        _dead_deliveries,
    ),
}


def database_metrics(gauges: DatabaseGauges) -> bytes:
    registry = CollectorRegistry()
    registry.register(gauges)
    return generate_latest(registry)
