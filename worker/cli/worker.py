"""`closeloop worker` and `closeloop beat`: the pipeline's processes."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Annotated

import typer

from worker.cli.warm_up import warm_up
from worker.config import get_settings
from worker.logging import configure_logging
from worker.tasks.app import QUEUES, configure

ALL_QUEUES = ",".join(QUEUES)


def worker(
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Comma-separated queues to consume.")
    ] = ALL_QUEUES,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Parallel tasks (processes or threads).")
    ] = 2,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo.")] = "prefork",
    name: Annotated[
        str | None, typer.Option(help="Worker node name (default: celery@host).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's Prometheus metrics (all its processes) here."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address for --metrics-port (no token: keep it private).")
    ] = "127.0.0.1",
    quiet: Annotated[bool, typer.Option(help="No start-up banner on stdout.")] = False,
) -> None:
    """Run a Celery worker. Production runs several, some per queue (webhooks apart)."""
    from worker.messaging.intake_queue import INCIDENTS_QUEUE, IncidentIntake

    if metrics_port is not None:
        serve_metrics(metrics_host, metrics_port)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = configure(settings)
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown:
        raise typer.BadParameter(
            f"unknown queue(s) {unknown}; known: {ALL_QUEUES}", param_hint="--queues"
        )
    task_queues = [q for q in wanted if q != INCIDENTS_QUEUE]
    if not task_queues:
        raise typer.BadParameter(
            "name at least one task queue too: the incidents consumer runs inside a worker",
            param_hint="--queues",
        )
    if INCIDENTS_QUEUE in wanted:
        # Raw JSON incidents are not Celery task messages: consumer threads of their own,
        # started and stopped with the worker, read them (worker/messaging/intake_queue.py).
        app.steps["worker"].add(IncidentIntake)
    argv = ["--quiet"] if quiet else []
    argv += ["worker", "--loglevel", settings.log_level, "-c", str(concurrency), "-P", pool]
    argv += ["-Q", ",".join(task_queues)]
    argv += ["-n", name] if name else []
    warm_up()
    app.worker_main(argv)


def serve_metrics(host: str, port: int) -> None:
    """Serve the metrics of this worker and of its pool's processes, which write theirs to a
    folder of their own (prometheus_client's multiprocess mode) that the server sums up."""
    if "prometheus_client" in sys.modules and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise RuntimeError("prometheus_client was imported before its multiprocess folder was set")
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="closeloop-worker-metrics-"
    )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # the pool's processes inherit it
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


def beat(
    quiet: Annotated[bool, typer.Option(help="No start-up banner on stdout.")] = False,
) -> None:
    """Run the scheduler of periodic work (outbox relay, sweeps, deadlines, webhook retries).
    Run exactly one per installation."""
    from worker.tasks.schedule import beat_schedule

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = configure(settings)
    app.conf.beat_schedule = beat_schedule()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    schedule = settings.data_dir / "beat-schedule"
    argv = ["--quiet"] if quiet else []
    app.start([*argv, "beat", "--loglevel", settings.log_level, "--schedule", str(schedule)])
