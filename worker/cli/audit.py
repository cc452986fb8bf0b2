"""`closeloop audit verify`: prove that no audit event was altered, removed or reordered."""

from typing import Annotated

import typer

from worker.audit import verify
from worker.db.session import get_engine

app = typer.Typer(no_args_is_help=True)


@app.command("verify")
def verify_command(
    case: Annotated[
        str | None, typer.Option("--case", help="Check this case's chain only.")
    ] = None,
) -> None:
    """Check every case's hash chain; exit 1 naming the first broken event of each bad chain."""
    report = verify(get_engine(), case_id=case)
    for problem in report.problems:
        typer.echo(f"BROKEN  {problem}", err=True)
    summary = (
        f"{report.events} events in {report.cases} cases checked in {report.seconds:.2f} s "
        f"({report.events_per_second:,.0f} events/s)"
    )
    if not report.ok:
        typer.echo(f"FAILED: {len(report.problems)} broken chain(s); {summary}", err=True)
        raise typer.Exit(1)
    if case is not None and report.cases == 0:
        typer.echo(f"no case {case}", err=True)
        raise typer.Exit(2)
    typer.echo(f"OK: {summary}")
