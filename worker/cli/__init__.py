"""The `closeloop` command: a module per command group, mounted in `main.py`."""

from __future__ import annotations

import sys

import typer


def main() -> None:
    """The console script: the app, with a user's errors said in one line."""
    try:
        from worker.cli.main import app  # here, so that a bad setting read at import is caught

        app()
    except Exception as error:
        message = user_error(error)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(2)


def user_error(error: BaseException) -> str | None:
    """One line for an error the user can fix by a setting or a step; None for a bug."""
    import kombu.exceptions
    import redis.exceptions
    from pydantic import ValidationError
    from sqlalchemy.exc import InterfaceError, OperationalError

    from worker.db.session import StoreNotFound
    from worker.ledger.audit_keys import AuditKeyError
    from worker.messaging.broker_transport import BrokerNotConfigured
    from worker.rules.loader import RulesLoadError

    if isinstance(error, StoreNotFound | BrokerNotConfigured | AuditKeyError):
        return str(error)
    if isinstance(error, OperationalError | InterfaceError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return (
            f"cannot use the store ({reason}); check CLOSELOOP_DATABASE_URL, or the data "
            "folder (--data-dir, CLOSELOOP_DATA_DIR)"
        )
    if isinstance(error, kombu.exceptions.OperationalError | redis.exceptions.ConnectionError):
        return (
            f"cannot reach the broker ({error}); is `closeloop up` still running? "
            "Otherwise check CLOSELOOP_BROKER_URL"
        )
    if isinstance(error, ValidationError) and error.title == "Settings":
        problems = "; ".join(
            f"CLOSELOOP_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        return f"bad setting: {problems}"
    if isinstance(error, RulesLoadError):
        return "the routing rules do not load: " + "; ".join(str(e) for e in error.errors)
    return None
