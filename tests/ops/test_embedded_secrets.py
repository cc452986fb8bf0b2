from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.ops.embedded_secrets import ensure_secrets, read_env_file

RULES = Path(__file__).resolve().parents[2] / "routing_rules"


@pytest.fixture(autouse=True)
def environment_restored() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_secrets_are_made_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSELOOP_SECRET_WATER", "whsec_from_the_operator")
    monkeypatch.delenv("CLOSELOOP_SECRET_GAS", raising=False)
    path = ensure_secrets(RULES, tmp_path)
    first = read_env_file(path)
    assert first["CLOSELOOP_SECRET_GAS"].startswith("whsec_")
    assert "CLOSELOOP_SECRET_WATER" not in first  # the operator's own stays theirs
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    monkeypatch.delenv("CLOSELOOP_SECRET_GAS")
    assert read_env_file(ensure_secrets(RULES, tmp_path)) == first
