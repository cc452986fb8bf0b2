"""`closeloop schemas export`: regenerate `schemas/` from the pydantic models."""

from pathlib import Path
from typing import Annotated

import typer

from worker.contracts.export import write_schemas

app = typer.Typer(no_args_is_help=True)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="Folder to write the *.json files to.")] = Path(
        "schemas"
    ),
) -> None:
    """Write every contract's JSON Schema to OUT (default: schemas/)."""
    for path in write_schemas(out):
        typer.echo(f"wrote {path}")
