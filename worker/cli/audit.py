"""`closeloop audit`: prove that no audit event was altered, removed, reordered, forged or cut
off and that no case vanished (`verify`), keep signed checkpoints of every chain's head outside
the database (`anchor`), and make keys (`new-key`)."""

from pathlib import Path
from typing import Annotated

import typer

from worker.config import get_settings
from worker.db.session import get_engine
from worker.ledger.audit import VerifyReport, verify
from worker.ledger.audit_anchor import AnchorInvalid, load_anchor, newest_anchor, write_anchor
from worker.ledger.audit_keys import keyring, new_key_entry

app = typer.Typer(no_args_is_help=True)


def _summary(report: VerifyReport) -> str:
    anchored = f", {report.anchored} anchored" if report.anchored else ""
    return (
        f"{report.events} events in {report.cases} cases{anchored} checked in "
        f"{report.seconds:.2f} s ({report.events_per_second:,.0f} events/s)"
    )


def _fail(report: VerifyReport) -> None:
    for problem in report.problems:
        typer.echo(f"BROKEN  {problem}", err=True)
    typer.echo(f"FAILED: {len(report.problems)} broken chain(s); {_summary(report)}", err=True)
    raise typer.Exit(1)


@app.command("verify")
def verify_command(
    case: Annotated[
        str | None, typer.Option("--case", help="Check this case's chain only.")
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            help="Check against this anchor file (default: the newest in the anchor folder, "
            "CLOSELOOP_AUDIT_ANCHOR_DIR or DATA_DIR/anchors).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Check every chain from its events, and against the newest anchor; exit 1 naming the
    first broken event of each bad chain, each vanished case and each cut chain."""
    engine = get_engine()  # no store is the first thing to say
    keys = keyring()
    path = anchor or newest_anchor(get_settings().anchor_dir())
    try:
        checkpoint = load_anchor(path, keys) if path is not None else None
    except AnchorInvalid as error:
        typer.echo(f"BROKEN  {error}", err=True)
        typer.echo("FAILED: the anchor does not hold", err=True)
        raise typer.Exit(1) from None
    report = verify(engine, case_id=case, keys=keys, anchor=checkpoint)
    if not report.ok:
        _fail(report)
    if case is not None and report.cases == 0:
        typer.echo(f"no case {case}", err=True)
        raise typer.Exit(2)
    against = (
        f"; against anchor {path.name}"
        if path is not None
        else "; no anchor (a store emptied whole is only caught against an anchor: "
        "run `closeloop audit anchor`)"
    )
    typer.echo(f"OK: {_summary(report)}{against}")


@app.command("anchor")
def anchor_command(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write the anchor to (default: CLOSELOOP_AUDIT_ANCHOR_DIR or "
            "DATA_DIR/anchors). Keep it, or a copy, away from the database.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Verify the store and write a signed checkpoint of every chain's head (a Merkle root);
    a store that does not verify is not anchored (exit 1)."""
    folder = out or get_settings().anchor_dir()
    engine = get_engine()
    try:
        path, report = write_anchor(engine, folder)
    except AnchorInvalid as error:
        typer.echo(f"BROKEN  {error}", err=True)
        typer.echo("FAILED: the previous anchor does not hold; nothing anchored", err=True)
        raise typer.Exit(1) from None
    if path is None:
        _fail(report)
    typer.echo(f"anchored {report.cases} chains ({report.events} events) in {path}")


@app.command("new-key")
def new_key_command() -> None:
    """Print a new `id:base64key` entry for CLOSELOOP_AUDIT_KEYS (put it first to rotate; keep
    the old entries after it, for verification)."""
    typer.echo(new_key_entry())
