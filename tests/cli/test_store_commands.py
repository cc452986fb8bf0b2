"""`closeloop db upgrade` and `closeloop audit verify`, run as a user runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from tests.support.factories import filed_case, walk_to
from tests.support.tamper import triggers_disabled
from worker.cli.main import app
from worker.config import reset_settings_cache
from worker.contracts.enums import CaseState as C
from worker.db.migrate import alembic_config
from worker.db.session import engine_for

runner = CliRunner()


@pytest.fixture
def use_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def point_at(url: str) -> None:
        monkeypatch.setenv("CLOSELOOP_DATABASE_URL", url)
        reset_settings_cache()

    yield point_at  # type: ignore[misc]
    reset_settings_cache()
    engine_for.cache_clear()


def test_db_upgrade_creates_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSELOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLOSELOOP_DATABASE_URL", raising=False)
    reset_settings_cache()
    try:
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
        assert f"database at revision {head}" in result.output
        assert (tmp_path / "data" / "closeloop.sqlite3").exists()
        again = runner.invoke(app, ["db", "upgrade"])
        assert again.exit_code == 0, again.output
    finally:
        reset_settings_cache()


def test_audit_verify_passes_then_fails_after_tampering(
    pg_url: str, pg_engine: Engine, use_database: object
) -> None:
    use_database(pg_url)  # type: ignore[operator]
    case_id = filed_case(pg_engine)
    walk_to(pg_engine, case_id, [C.triaged, C.dispatched])
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "OK: 3 events in 1 cases" in ok.output
    with triggers_disabled(pg_engine) as connection:
        connection.execute(
            text("UPDATE audit_events SET data = '{\"x\": 1}' WHERE case_id = :c AND seq = 2"),
            {"c": case_id},
        )
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"case {case_id}, event 2" in broken.output
    one = runner.invoke(app, ["audit", "verify", "--case", case_id])
    assert one.exit_code == 1


def test_audit_verify_unknown_case(pg_url: str, use_database: object) -> None:
    use_database(pg_url)  # type: ignore[operator]
    result = runner.invoke(app, ["audit", "verify", "--case", "no-such-case"])
    assert result.exit_code == 2
    assert "no case no-such-case" in result.output
