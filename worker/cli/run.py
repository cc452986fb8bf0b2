"""Running the service: `closeloop up` (everything, embedded) and `closeloop api`."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from worker.config import Settings, get_settings, reset_settings_cache
from worker.logging import configure_logging
from worker.ops.instance import RunningInstance, announce, running_instance, withdraw
from worker.ops.restarter import CrashLoop, Supervisor


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
        "--quiet",
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
        "--quiet",
    ],
    ["beat", "--quiet"],
]


def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the embedded SQLite and Redis keep their data (default ./data)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="The API's address (CLOSELOOP_API_HOST).")] = (
        None
    ),
    port: Annotated[int | None, typer.Option(help="The API's port (CLOSELOOP_API_PORT).")] = (None),
) -> None:
    """Run everything on the embedded default: SQLite, an embedded Redis, API, worker, beat.

    A process that exits is started again (after a short back-off); one that keeps exiting
    stops everything, saying which."""
    if data_dir is not None:
        os.environ["CLOSELOOP_DATA_DIR"] = str(data_dir.resolve())
    for name, value in (("CLOSELOOP_API_HOST", host), ("CLOSELOOP_API_PORT", port)):
        if value is not None:
            os.environ[name] = str(value)
    reset_settings_cache()
    settings = get_settings()
    folder = settings.data_dir.resolve()
    already = running_instance(folder)
    if already is not None:
        _refuse(f"closeloop is already running on {folder} (pid {already.pid}, {already.api_url})")
    if not port_free(settings.api_host, settings.api_port):
        _refuse(
            f"port {settings.api_port} on {settings.api_host} is taken (another closeloop up? "
            "something else?): choose another with --port"
        )
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["CLOSELOOP_DATA_DIR"] = str(folder)
    # Children may start elsewhere: hand them absolute paths.
    os.environ["CLOSELOOP_RULES_DIR"] = str(settings.resolved_rules_dir())
    os.environ["CLOSELOOP_API_HOST"] = settings.api_host
    os.environ["CLOSELOOP_API_PORT"] = str(settings.api_port)
    # The embedded default runs on one machine: the example city's endpoints are on loopback.
    os.environ.setdefault("CLOSELOOP_ENVIRONMENT", "development")
    configure_logging(settings.log_level, settings.log_format)
    redis = None
    if not os.environ.get("CLOSELOOP_BROKER_URL"):
        from worker.ops.embedded import EmbeddedRedis

        redis = EmbeddedRedis(folder / "redis")
        os.environ["CLOSELOOP_BROKER_URL"] = redis.url
    os.environ["CLOSELOOP_DATABASE_URL"] = settings.resolved_database_url()
    reset_settings_cache()
    settings = get_settings()
    stop = threading.Event()
    supervisor: Supervisor | None = None
    failed: CrashLoop | None = None
    try:
        from worker.db.migrate import upgrade
        from worker.ledger.audit_keys import ensure_key
        from worker.ops.embedded_secrets import ensure_secrets

        ensure_key(folder)
        upgrade(settings.resolved_database_url())
        secrets_file = ensure_secrets(settings.resolved_rules_dir(), folder)
        announce(
            folder,
            RunningInstance(
                pid=os.getpid(),
                api_url=settings.base_url(),
                broker_url=str(settings.broker_url),
                database_url=settings.resolved_database_url(),
                rules_dir=str(settings.resolved_rules_dir()),
            ),
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        typer.echo(f"starting closeloop: data in {folder}; Ctrl-C stops it")
        supervisor = Supervisor(UP_COMMANDS)
        threading.Thread(
            target=_say_when_ready, args=(settings, secrets_file, stop), daemon=True
        ).start()
        supervisor.run(stop)
    except CrashLoop as crash:
        failed = crash
    finally:
        stop.set()
        if supervisor is not None:
            supervisor.stop()
        withdraw(folder, os.getpid())
        if redis is not None:
            redis.stop()
    if failed is not None:
        typer.echo(f"closeloop stopped: {failed}", err=True)
        raise typer.Exit(1)
    typer.echo("closeloop stopped")


def _refuse(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _say_when_ready(settings: Settings, secrets_file: Path, stop: threading.Event) -> None:
    """Print the API's address once `/ready` answers: a newcomer's next step works then."""
    import httpx

    url = f"http://{settings.api_host}:{settings.api_port}"
    while not stop.wait(0.25):
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            continue
    else:
        return
    typer.echo(f"closeloop is up: API {settings.base_url()}  (docs {settings.base_url()}/docs)")
    typer.echo(f"routing rules: {settings.resolved_rules_dir()}")
    typer.echo(f"departments' webhook secrets: {secrets_file}")
    typer.echo(
        f"next: closeloop token create --role hotline   (here, or anywhere with --data-dir "
        f"{settings.data_dir})"
    )


def health() -> None:
    """Exit 0 if the database and the broker answer, 1 (saying which did not) otherwise."""
    from worker.api.health import check_broker, check_database

    problems = [p for p in (check_database(), check_broker()) if p]
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: database and broker answer")
