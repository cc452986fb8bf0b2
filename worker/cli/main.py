"""The `closeloop` typer app: mounts every command group (the console script is `worker.cli:main`).

A command's answer goes to stdout and nothing else does: logs go to stderr, so that
`TOKEN=$(closeloop token create ...)` captures the token alone. An error a user can fix (no
store here, no broker, a bad setting) ends in one line saying what to do, not a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="closeloop",
    help="closeloop routes city incidents to the departments that must act, and closes the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _everywhere(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="The data folder of the instance to work on (CLOSELOOP_DATA_DIR; default "
            "./data). A `closeloop up` running on it lends its broker and store.",
        ),
    ] = None,
) -> None:
    from worker.config import get_settings, reset_settings_cache
    from worker.logging import configure_logging

    if data_dir is not None:
        os.environ["CLOSELOOP_DATA_DIR"] = str(data_dir.resolve())
        reset_settings_cache()
        if "worker.tasks.app" in sys.modules:  # configured at import, from the old settings
            from worker.tasks.app import configure

            configure()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _mount() -> None:
    # Each group lives in its own module; importing here keeps `closeloop --help` the one index.
    from worker.cli import (
        audit,
        db,
        deliveries,
        demo,
        intake,
        metrics,
        receive,
        reconcile,
        rules,
        run,
        schemas,
        token,
        worker,
    )

    app.command("up")(run.up)
    app.command("api")(run.api)
    app.command("worker")(worker.worker)
    app.command("beat")(worker.beat)
    app.command("health")(run.health)
    app.command("reconcile")(reconcile.reconcile_command)
    app.command("metrics")(metrics.metrics)
    app.command("demo")(demo.demo)
    app.command("receive")(receive.receive)
    app.add_typer(
        intake.app, name="intake", help="Publish incidents to the intake queue, or consume them."
    )
    app.add_typer(db.app, name="db", help="The store: migrations.")
    app.add_typer(audit.app, name="audit", help="The audit store: verify its hash chains.")
    app.add_typer(schemas.app, name="schemas", help="Export the JSON Schema contracts.")
    app.add_typer(rules.app, name="rules", help="Check, test, explain and show the routing rules.")
    app.add_typer(token.app, name="token", help="The API's bearer tokens: create, list, revoke.")
    app.add_typer(
        deliveries.app, name="deliveries", help="Webhook dead letters: list, replay, re-enable."
    )


_mount()
