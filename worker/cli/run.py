"""Running the service: `closeloop up` (everything, embedded) and `closeloop api`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from worker.config import get_settings, reset_settings_cache
from worker.logging import configure_logging, get_logger

log = get_logger("closeloop.run")


def api(
    host: Annotated[str | None, typer.Option(help="Listen address (CLOSELOOP_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (CLOSELOOP_API_PORT).")] = None,
) -> None:
    """Serve the HTTP API (production: run several behind a load balancer)."""
    import uvicorn

    from worker.api.app import create_app

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(),
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
    """Run everything on the embedded default: SQLite, an embedded Redis, API, worker, beat."""
    settings = get_settings()
    folder = (data_dir or settings.data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["CLOSELOOP_DATA_DIR"] = str(folder)
    # Children may start elsewhere: hand them absolute paths.
    os.environ["CLOSELOOP_RULES_DIR"] = str(settings.resolved_rules_dir())
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
    children = [_spawn(command) for command in UP_COMMANDS]
    typer.echo(f"closeloop is up: API {settings.base_url()}  (docs {settings.base_url()}/docs)")
    typer.echo(f"data in {folder}; broker {settings.broker_url}; Ctrl-C stops it")
    typer.echo(f"departments' webhook secrets: {secrets_file}")
    try:
        _wait(children)
    finally:
        _stop(children)
        if redis is not None:
            redis.stop()
        typer.echo("closeloop stopped")


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "worker", *command])  # noqa: S603 - our own CLI


def _wait(children: list[subprocess.Popen[bytes]]) -> None:
    stop = {"now": False}

    def on_signal(signum: int, _: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop["now"]:
            for child in children:
                if child.poll() is not None:
                    log.error(
                        "process exited; stopping the rest", args=child.args, code=child.returncode
                    )
                    return
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def health() -> None:
    """Exit 0 if the database and the broker answer, 1 (saying which did not) otherwise."""
    from worker.api.health import check_broker, check_database

    problems = [p for p in (check_database(), check_broker()) if p]
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: database and broker answer")
