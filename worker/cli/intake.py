"""`closeloop intake send FILE`: publish incidents to the intake queue, as any producer would."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from worker.contracts.incident import Incident
from worker.messaging.intake_queue import INCIDENTS_QUEUE, describe_errors

app = typer.Typer(no_args_is_help=True)


def read_incidents(path: Path) -> list[Any]:
    """A JSON file holds one incident (or a list); a .jsonl file holds one per line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    loaded = json.loads(text)
    return loaded if isinstance(loaded, list) else [loaded]


@app.command("send")
def send(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A .json or .jsonl file.")
    ],
    check: Annotated[
        bool, typer.Option(help="Validate each incident before sending (--no-check sends as is).")
    ] = True,
) -> None:
    """Publish each incident in FILE to the `incidents` queue (CLOSELOOP_BROKER_URL)."""
    from worker.messaging.broker import publish_raw

    try:
        incidents = read_incidents(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        typer.echo(f"{file}: not JSON: {error}", err=True)
        raise typer.Exit(2) from error
    if check:
        bad = _invalid(incidents)
        if bad:
            for line in bad:
                typer.echo(line, err=True)
            raise typer.Exit(2)
    for incident in incidents:
        publish_raw(INCIDENTS_QUEUE, json.dumps(incident, ensure_ascii=False), str(uuid.uuid4()))
    typer.echo(f"sent {len(incidents)} incident(s) to the '{INCIDENTS_QUEUE}' queue")


def _invalid(incidents: list[Any]) -> list[str]:
    problems = []
    for number, incident in enumerate(incidents, start=1):
        try:
            Incident.model_validate(incident)
        except ValidationError as error:
            problems.append(f"incident {number}: {describe_errors(error)}")
    return problems


@app.command("consume")
def consume(
    threads: Annotated[
        int | None, typer.Option(help="Consumer threads (CLOSELOOP_INTAKE_CONSUMERS).", min=1)
    ] = None,
    parent: Annotated[
        int | None, typer.Option(help="Stop when this process is gone (set by the worker).")
    ] = None,
) -> None:
    """Take incidents off the `incidents` queue and file them. A worker whose --queues name
    `incidents` runs this for you; run it alone to scale intake apart from the pipeline."""
    from worker.cli.warm_up import warm_up
    from worker.config import get_settings
    from worker.logging import configure_logging
    from worker.messaging.intake_queue import consume as run

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    warm_up()
    run(threads=threads, parent=parent)
