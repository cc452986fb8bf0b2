"""`closeloop db upgrade`: bring the store's schema to the current version."""

import typer

from worker.config import get_settings
from worker.db.migrate import current_revision, upgrade

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every pending migration to CLOSELOOP_DATABASE_URL (or the embedded SQLite file)."""
    settings = get_settings()
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    typer.echo(f"database at revision {current_revision(url)}")
