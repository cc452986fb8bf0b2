"""`closeloop demo`: a simulated day of the example city on the embedded default, then its
figures, and the dashboard to look at them (see worker/ops/demo.py for what is simulated)."""

from __future__ import annotations

import base64
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from worker.config import get_settings, reset_settings_cache


def demo(
    incidents: Annotated[int, typer.Option(help="Calls over the day.", min=1)] = 400,
    hours: Annotated[float, typer.Option(help="Length of the simulated day.", min=0.5)] = 24.0,
    seed: Annotated[int, typer.Option(help="Replays the same day.")] = 7,
    data_dir: Annotated[
        Path, typer.Option(help="The demo's own store (started afresh each run).")
    ] = Path("closeloop-demo"),
    port: Annotated[
        int | None,
        typer.Option(help="The dashboard's port (default CLOSELOOP_API_PORT, or a free one)."),
    ] = None,
    serve: Annotated[
        bool, typer.Option(help="Serve the dashboard afterwards, until Ctrl-C (--no-serve: exit).")
    ] = True,
) -> None:
    """Simulate a day of the example city: calls, departments at work, callbacks; then show
    the day's figures and serve the supervisors' dashboard."""
    folder = data_dir.resolve()
    # Before the half minute of simulation: a dashboard that cannot bind is better said now.
    port = _dashboard_port(port, get_settings().api_port) if serve else port
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "closeloop.sqlite3"
    for old in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        old.unlink(missing_ok=True)
    # The demo's store only, whatever the environment points at; no broker: nothing is queued
    # for a worker, the simulation itself runs each stage.
    os.environ["CLOSELOOP_DATA_DIR"] = str(folder)
    os.environ["CLOSELOOP_DATABASE_URL"] = f"sqlite:///{store}"
    os.environ.pop("CLOSELOOP_BROKER_URL", None)
    os.environ.setdefault("CLOSELOOP_LOG_LEVEL", "WARNING")
    reset_settings_cache()
    settings = get_settings()

    from worker.clock import now
    from worker.db.migrate import upgrade
    from worker.db.session import get_engine
    from worker.ledger.audit_keys import ensure_key
    from worker.logging import configure_logging
    from worker.ops.demo import DemoDay, Receiver
    from worker.rules import load_ruleset

    configure_logging(settings.log_level, settings.log_format)
    ensure_key(folder)  # the demo's events are sealed with a key of its own folder's
    upgrade(settings.resolved_database_url())
    ruleset = load_ruleset(settings.resolved_rules_dir())
    end = now().replace(microsecond=0)
    start = end - timedelta(hours=hours)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(f"A day of the example city: {incidents} calls, {start:%Y-%m-%d %H:%M} to "
                  f"{end:%Y-%m-%d %H:%M} UTC, store in {folder}")  # fmt: skip
    with Receiver(secret) as receiver, _progress(console) as progress:
        bar = progress.add_task("simulating", total=int(hours * 60))
        day = DemoDay(get_engine(), ruleset, receiver, start, hours, incidents, seed)

        def step(moment: object, tally: object) -> None:
            minutes = int((day.clock.now() - start).total_seconds() // 60)
            t = day.tally
            progress.update(
                bar,
                completed=minutes,
                description=f"{day.clock.now():%H:%M}  filed {t.filed}, resolved {t.resolved}, "
                f"callbacks {t.callbacks}",
            )

        tally = day.run(step)
        progress.update(bar, completed=int(hours * 60))
    console.print(
        f"filed {tally.filed} ({tally.merged} folded into an open case), tasks accepted "
        f"{tally.accepted}, resolved {tally.resolved}, returned {tally.returned}; callbacks "
        f"answered {tally.callbacks}; webhooks {sum(tally.webhooks.values())} "
        f"({receiver.bad_signatures} with a bad signature)"
    )
    _print_figures(console, start, end)
    if serve and port is not None:
        _serve(console, port)


def _dashboard_port(asked: int | None, default: int) -> int:
    """The port asked for, refused at once if taken; else the default, or a free one when
    the default is taken (a `closeloop up` on the same machine, most often)."""
    from worker.cli.run import port_free
    from worker.ops.embedded import free_port

    if asked is not None:
        if not port_free("127.0.0.1", asked):
            typer.echo(f"error: port {asked} is taken: choose another with --port", err=True)
            raise typer.Exit(1)
        return asked
    if port_free("127.0.0.1", default):
        return default
    chosen = free_port()
    typer.echo(f"port {default} is taken (closeloop up?): the dashboard will use {chosen}")
    return chosen


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    )


def _print_figures(console: Console, start: object, end: object) -> None:
    from worker.cli.metrics import metrics_table
    from worker.db.session import get_engine, session_factory
    from worker.metrics.definitions import GroupBy
    from worker.metrics.report import build_report

    with session_factory(get_engine())() as session:
        report = build_report(session, start, end, GroupBy.department, ZoneInfo("UTC"))  # type: ignore[arg-type]
    console.print(metrics_table(report))


def _serve(console: Console, port: int) -> None:
    import uvicorn

    from worker.api.app import create_app
    from worker.auth import Role, create_token
    from worker.db.session import transaction

    with transaction() as session:
        token = create_token(session, Role.supervisor, name="demo supervisor").token
    console.print(f"\nDashboard: http://127.0.0.1:{port}/dashboard  (sign in with {token})")
    console.print("Ctrl-C stops it.")
    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning")
