"""Entry point of the `closeloop` console script: mounts every command group."""

import typer

app = typer.Typer(
    name="closeloop",
    help="closeloop routes city incidents to the departments that must act, and closes the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _mount() -> None:
    # Each group lives in its own module; importing here keeps `closeloop --help` the one index.
    from worker.cli import (
        audit,
        db,
        deliveries,
        demo,
        intake,
        metrics,
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
