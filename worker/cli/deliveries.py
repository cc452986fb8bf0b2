"""`closeloop deliveries`: the webhook dead letters, their replay, retry-now of a pending delivery,
and endpoints back from 410."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.db.session import get_engine, session_factory, transaction
from worker.webhooks import (
    dead_ids,
    enable_endpoint,
    find_deliveries,
    replay_deliveries,
    retry_deliveries_now,
)

app = typer.Typer(no_args_is_help=True)


def _operator() -> Actor:
    # Whoever runs the CLI holds the database credentials: an administrator, by name.
    return Actor(kind=ActorKind.admin, id=f"cli:{getpass.getuser()}")


@app.command("dead")
def dead(
    department: Annotated[str | None, typer.Option(help="Only this department's.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
) -> None:
    """List the dead letters: deliveries that used up their schedule or hit a gone endpoint."""
    with session_factory(get_engine())() as session:
        found = find_deliveries(session, state="dead", department=department, limit=limit)
    table = Table(title=f"Dead deliveries ({len(found)})")
    for column in ("id", "department", "event", "case", "attempts", "last status", "why"):
        table.add_column(column, overflow="fold")
    for delivery in found:
        table.add_row(
            delivery.id,
            delivery.department,
            delivery.event_type,
            delivery.case_id,
            str(delivery.attempts),
            str(delivery.last_status or "-"),
            delivery.last_error or "",
        )
    Console(width=200).print(table)


@app.command("replay")
def replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Delivery ids to send again.")] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="Replay every dead delivery.")
    ] = False,
    department: Annotated[
        str | None, typer.Option(help="With --all-dead: only this department's.")
    ] = None,
) -> None:
    """Send deliveries again from the start of the schedule, with the same webhook-id."""
    if bool(ids) == all_dead:
        raise typer.BadParameter("give delivery ids, or --all-dead (not both)")
    with transaction(get_engine()) as session:
        chosen = ids or dead_ids(session, department=department)
        report = replay_deliveries(session, chosen, actor=_operator())
    for delivery_id in report.replayed:
        typer.echo(f"replayed {delivery_id}")
    for delivery_id, why in report.skipped.items():
        typer.echo(f"skipped  {delivery_id}: {why}", err=True)
    typer.echo(f"{len(report.replayed)} replayed, {len(report.skipped)} skipped")
    if report.skipped:
        raise typer.Exit(1)


@app.command("retry")
def retry(
    ids: Annotated[list[str], typer.Argument(help="Pending delivery ids to attempt now.")],
) -> None:
    """Attempt pending deliveries now instead of at their next scheduled retry (same
    delivery, same webhook-id; dead or delivered ones are replayed instead)."""
    with transaction(get_engine()) as session:
        report = retry_deliveries_now(session, ids, actor=_operator())
    for delivery_id in report.replayed:
        typer.echo(f"retrying {delivery_id} now")
    for delivery_id, why in report.skipped.items():
        typer.echo(f"skipped  {delivery_id}: {why}", err=True)
    typer.echo(f"{len(report.replayed)} retried now, {len(report.skipped)} skipped")
    if report.skipped:
        raise typer.Exit(1)


@app.command("enable")
def enable(department: Annotated[str, typer.Argument(help="The department's id.")]) -> None:
    """Send to a department's endpoint again after it answered 410 Gone (and close its circuit)."""
    with transaction(get_engine()) as session:
        known = enable_endpoint(session, department)
    if not known:
        typer.echo(f"no endpoint state for {department}: nothing was ever disabled", err=True)
        raise typer.Exit(2)
    typer.echo(f"{department}: endpoint enabled; replay its dead deliveries to resend them")
