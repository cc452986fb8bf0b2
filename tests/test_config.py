from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import Settings


def test_every_variable_is_prefixed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLOSELOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLOSELOOP_API_PORT", "9999")
    monkeypatch.setenv("API_PORT", "1")
    settings = Settings()
    assert settings.api_port == 9999
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'closeloop.sqlite3'}"


def test_database_url_wins_over_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSELOOP_DATABASE_URL", "postgresql+psycopg://db/closeloop")
    assert Settings().resolved_database_url() == "postgresql+psycopg://db/closeloop"


def test_the_configuration_reference_lists_every_setting() -> None:
    page = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    text = page.read_text(encoding="utf-8")
    missing = [
        f"CLOSELOOP_{name.upper()}"
        for name in Settings.model_fields
        if f"CLOSELOOP_{name.upper()}" not in text
    ]
    assert not missing, f"docs/configuration.md does not list: {missing}"
