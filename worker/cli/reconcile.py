"""`closeloop reconcile`: accepted incidents vs cases vs tasks vs deliveries."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer

from worker.db.session import get_engine, session_factory
from worker.ops.reconcile import reconcile


def reconcile_command(
    grace: Annotated[
        int, typer.Option(help="Seconds of work in flight to allow before calling it missing.")
    ] = 120,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Count cases, tasks and deliveries and name anything missing; exit 1 if something is."""
    with session_factory(get_engine())() as session:
        report = reconcile(session, timedelta(seconds=grace))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(f"cases       {report.cases:>8}  {_states(report.cases_by_state)}")
        typer.echo(f"tasks       {report.tasks:>8}")
        typer.echo(f"deliveries  {report.deliveries:>8}  {_states(report.deliveries_by_state)}")
        for title, ids in (
            ("cases stuck before dispatch", report.stalled_cases),
            ("dispatched cases without a lead task", report.cases_without_lead_task),
            ("tasks without their delivery", report.tasks_without_delivery),
            ("dead deliveries", report.dead_deliveries),
        ):
            if ids:
                typer.echo(f"MISSING {title}: {len(ids)} (first: {', '.join(ids[:5])})")
        if late := report.late_deliveries:
            worst = ", ".join(f"{d.id} ({_late(d.late_seconds)})" for d in late[:5])
            typer.echo(
                f"MISSING deliveries late past their next attempt: {len(late)} (most late: {worst})"
            )
        if report.unpublished_messages:
            typer.echo(f"MISSING unpublished outbox messages: {report.unpublished_messages}")
        typer.echo(f"missing: {report.missing}")
    if report.missing:
        raise typer.Exit(1)


def _states(counts: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(counts.items()))


def _late(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min late"
    return f"{minutes} min {secs} s late" if minutes else f"{secs} s late"
