"""Running the service: `closeloop up` (everything, embedded) and `closeloop api`."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from worker.config import get_settings, reset_settings_cache
from worker.logging import configure_logging
from worker.supervisor import CrashLoop, Supervisor


def api(
    host: Annotated[str | None, typer.Option(help="Listen address (CLOSELOOP_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (CLOSELOOP_API_PORT).")] = None,
) -> None:
    """Serve the HTTP API (production: run several behind a load balancer)."""
    import uvicorn

    from worker.api.app import create_app
    from worker.cli.warm_up import warm_up

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app()
    warm_up()
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
        proxy_headers=True,
    )


# The processes `closeloop up` runs, each the same console command production runs.
UP_COMMANDS: list[list[str]] = [
    ["api"],
    [
        "worker",
        "--queues",
        "incidents,pipeline,timers",
        "--concurrency",
        "2",
        "--name",
        "pipeline@%h",
    ],
    [
        "worker",
        "--queues",
        "webhooks",
        "--concurrency",
        "4",
        "--pool",
        "threads",
        "--name",
        "webhooks@%h",
    ],
    ["beat"],
]


def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the embedded SQLite and Redis keep their data.")
    ] = None,
) -> None:
    """Run everything on the embedded default: SQLite, an embedded Redis, API, worker, beat.

    A process that exits is started again (after a short back-off); one that keeps exiting
    stops everything, saying which."""
    settings = get_settings()
    folder = (data_dir or settings.data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["CLOSELOOP_DATA_DIR"] = str(folder)
    # Children may start elsewhere: hand them absolute paths.
    os.environ["CLOSELOOP_RULES_DIR"] = str(settings.resolved_rules_dir())
    # The embedded default runs on one machine: the example city's endpoints are on loopback.
    os.environ.setdefault("CLOSELOOP_ENVIRONMENT", "development")
    configure_logging(settings.log_level, settings.log_format)
    redis = None
    if not settings.broker_url:
        from worker.embedded import EmbeddedRedis

        redis = EmbeddedRedis(folder / "redis")
        os.environ["CLOSELOOP_BROKER_URL"] = redis.url
    reset_settings_cache()
    settings = get_settings()

    from worker.db.migrate import upgrade

    upgrade(settings.resolved_database_url())
    from worker.embedded_secrets import ensure_secrets

    secrets_file = ensure_secrets(settings.resolved_rules_dir(), folder)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    supervisor = Supervisor(UP_COMMANDS)
    typer.echo(f"closeloop is up: API {settings.base_url()}  (docs {settings.base_url()}/docs)")
    typer.echo(f"data in {folder}; broker {settings.broker_url}; Ctrl-C stops it")
    typer.echo(f"departments' webhook secrets: {secrets_file}")
    failed: CrashLoop | None = None
    try:
        supervisor.run(stop)
    except CrashLoop as crash:
        failed = crash
    finally:
        supervisor.stop()
        if redis is not None:
            redis.stop()
    if failed is not None:
        typer.echo(f"closeloop stopped: {failed}", err=True)
        raise typer.Exit(1)
    typer.echo("closeloop stopped")


def health() -> None:
    """Exit 0 if the database and the broker answer, 1 (saying which did not) otherwise."""
    from worker.api.health import check_broker, check_database

    problems = [p for p in (check_database(), check_broker()) if p]
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: database and broker answer")
