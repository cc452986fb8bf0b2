"""`closeloop schemas export`: regenerate `schemas/` from the pydantic models."""

from pathlib import Path

import typer

from worker.contracts.export import write_schemas

app = typer.Typer(no_args_is_help=True)


@app.command("export")
def export(
    out: Path = typer.Option(Path("schemas"), "--out", help="Folder to write the *.json files to."),
) -> None:
    """Write every contract's JSON Schema to OUT (default: schemas/)."""
    for path in write_schemas(out):
        typer.echo(f"wrote {path}")
