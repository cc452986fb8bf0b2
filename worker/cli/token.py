"""`closeloop token create | list | revoke`: the API's bearer tokens.

A token is printed once, when it is made; only its hash is kept, so a lost token is revoked
and replaced, never recovered.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from worker.auth import Role, TokenError, create_token, list_tokens, revoke_token
from worker.clock import now
from worker.db.session import transaction
from worker.rules import RulesLoadError, registry
from worker.rules.durations import parse_duration

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="What the token may do.", case_sensitive=False)],
    department: Annotated[
        str | None,
        typer.Option(help="The department a department token acts for (its id in the rules)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="A name to know it by (default: department or role).")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="Refuse it after this long, e.g. 90d, 12w, 36h (default: never)."),
    ] = None,
) -> None:
    """Make a bearer token and print it once. Keep it: only its hash is stored."""
    try:
        lifetime = _lifetime(expires)
        with transaction() as session:
            made = create_token(
                session,
                role,
                name=name,
                department=department,
                known_departments=_departments() if role is Role.department else None,
                expires_in=lifetime,
            )
    except TokenError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    record = made.record
    scope = f" for department {record.department}" if record.department else ""
    until = f", expires {_when(record.expires_at)}" if record.expires_at else ""
    typer.echo(f"token {record.id} ({record.role}{scope}), named '{record.name}'{until}:", err=True)
    typer.echo(made.token)
    typer.echo("Shown once: store it now. Send it as `Authorization: Bearer <token>`.", err=True)


@app.command("list")
def list_command() -> None:
    """Every token (never the token itself): who it is for, and when it was last used."""
    with transaction() as session:
        tokens = list_tokens(session)
    table = Table("id", "name", "role", "department", "created", "expires", "revoked", "last used")
    for record in tokens:
        table.add_row(
            record.id,
            record.name,
            record.role,
            record.department or "",
            _when(record.created_at),
            _expiry(record.expires_at),
            _when(record.revoked_at, "no"),
            _when(record.last_used_at, "never"),
        )
    Console(width=200).print(table)


@app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `list`).")]) -> None:
    """Revoke a token: from now on it is refused with 401."""
    with transaction() as session:
        record = revoke_token(session, token_id)
    if record is None:
        typer.echo(f"error: no token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"token {record.id} ('{record.name}') revoked at {_when(record.revoked_at)}")


def _departments() -> frozenset[str]:
    # A token for a department the rules do not know could never see a task: refuse it now.
    try:
        return frozenset(registry.get().departments)
    except RulesLoadError as error:
        typer.echo(
            f"error: cannot check the department against the routing rules: {error}\n"
            "Fix them first (`closeloop rules check`).",
            err=True,
        )
        raise typer.Exit(2) from error


def _lifetime(expires: str | None) -> timedelta | None:
    if expires is None:
        return None
    try:
        return parse_duration(expires)
    except ValueError as error:
        raise TokenError(f"--expires: {error}") from error


def _expiry(moment: datetime | None) -> str:
    if moment is None:
        return "no"
    return _when(moment) + (" (expired)" if moment <= now() else "")


def _when(moment: datetime | None, missing: str = "") -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else missing
