"""`closeloop worker` warms up before its pool starts, so that the pool inherits the work, and
`closeloop api` before its first request."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.cli.warm_up import warm_up
from worker.db.session import engine_for
from worker.rules import registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_registry() -> Iterator[registry.Registry]:
    previous = registry._default
    try:
        yield registry.configure(ROOT / "routing_rules")
    finally:
        registry._default = previous
        gc.unfreeze()


def test_warm_up_loads_the_rules_and_freezes_what_is_loaded(
    fresh_registry: registry.Registry,
) -> None:
    assert not fresh_registry.loaded
    engine_for.cache_clear()
    warm_up()
    assert fresh_registry.loaded
    assert engine_for.cache_info().currsize == 1  # the engine is made, the driver imported
    assert gc.get_freeze_count() > 0


def test_a_broken_rules_folder_does_not_stop_the_worker(tmp_path: Path) -> None:
    previous = registry._default
    (tmp_path / "departments.yaml").write_text("departments: [\n", encoding="utf-8")
    try:
        broken = registry.configure(tmp_path)
        warm_up()  # logged; the tasks wait for usable rules, as they always did
        assert not broken.loaded
    finally:
        registry._default = previous
        gc.unfreeze()


def test_the_api_warms_up_before_it_serves(
    fresh_registry: registry.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from worker.cli.run import api

    seen: dict[str, object] = {}

    def serve(app: object, **_: object) -> None:  # in place of serving: what is ready by now
        seen["frozen"] = gc.get_freeze_count()
        seen["rules loaded"] = fresh_registry.loaded

    monkeypatch.setattr(uvicorn, "run", serve)
    gc.unfreeze()
    api(host="127.0.0.1", port=1)
    assert seen["rules loaded"] is True
    assert isinstance(seen["frozen"], int)
    assert seen["frozen"] > 0
