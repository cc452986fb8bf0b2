"""`closeloop worker` warms up before its pool starts, so that the pool inherits the work, and
`closeloop api` before its first request."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.cli.warm_up import warm_up
from worker.config import reset_settings_cache
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


@pytest.fixture(autouse=True)
def store(sqlite_url: str) -> Iterator[None]:
    """A store to warm up against: a process without one stops at start, saying so."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLOSELOOP_DATABASE_URL", sqlite_url)
        reset_settings_cache()
        yield
    reset_settings_cache()


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


def _serve_api() -> None:
    from worker.cli.run import api

    api(host="127.0.0.1", port=1)


def _consume_intake() -> None:
    from worker.cli.intake import consume

    consume(threads=1, parent=None)


@pytest.mark.parametrize(
    ("module", "name", "command"),
    [("uvicorn", "run", _serve_api), ("worker.messaging.intake_queue", "consume", _consume_intake)],
    ids=["closeloop api", "closeloop intake consume"],
)
def test_a_long_running_command_warms_up_before_its_first_case(
    fresh_registry: registry.Registry,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    name: str,
    command: Callable[[], None],
) -> None:
    seen: dict[str, object] = {}

    def start(*_: object, **__: object) -> None:  # in place of serving: what is ready by now
        seen["frozen"] = gc.get_freeze_count()
        seen["rules loaded"] = fresh_registry.loaded

    monkeypatch.setattr(importlib.import_module(module), name, start)
    gc.unfreeze()
    command()
    assert seen["rules loaded"] is True
    assert isinstance(seen["frozen"], int)
    assert seen["frozen"] > 0
