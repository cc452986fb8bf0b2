"""The ruleset in force: atomic swaps, refused loads keep the old one, cheap change checks."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from tests.rules.conftest import WEDNESDAY_10AM, incident, route, write_rules
from worker.config import reset_settings_cache
from worker.logging import configure_logging
from worker.rules import RulesLoadError, decide
from worker.rules import registry as registry_module
from worker.rules.registry import Registry


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _break(folder: Path) -> None:
    (folder / "broken.yaml").write_text(
        "routes:\n  - {id: x, lead: nobody, acknowledge_within: 1h, resolve_within: 1d}\n"
    )


def test_get_loads_once_and_returns_the_same_object(tmp_path: Path) -> None:
    registry = Registry(write_rules(tmp_path / "rules", [route("r", "water")]))
    assert registry.get() is registry.get()


def test_reload_swaps_in_a_good_load(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    registry = Registry(folder)
    before = registry.get()
    write_rules(folder, [route("r", "gas")])
    after = registry.reload()
    assert registry.get() is after
    assert after.version != before.version
    assert decide(registry.get(), incident(), WEDNESDAY_10AM).lead == "gas"


def test_a_refused_load_keeps_the_old_ruleset(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    registry = Registry(folder)
    before = registry.get()
    _break(folder)
    with pytest.raises(RulesLoadError) as refused:
        registry.reload()
    assert "unknown department 'nobody'" in str(refused.value)
    assert registry.get() is before


def test_first_load_of_a_bad_folder_raises(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    _break(folder)
    with pytest.raises(RulesLoadError):
        Registry(folder).get()


def test_maybe_reload_looks_at_most_every_few_seconds(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    clock = Clock()
    registry = Registry(folder, check_every=2.0, clock=clock)
    before = registry.get()
    write_rules(folder, [route("r", "gas", resolve_within="2d")])  # a different size, surely seen
    clock.now = 1.0
    assert registry.maybe_reload() is False
    assert registry.get() is before
    clock.now = 2.5
    assert registry.maybe_reload() is True
    assert decide(registry.get(), incident(), WEDNESDAY_10AM).lead == "gas"
    clock.now = 5.0
    assert registry.maybe_reload() is False  # nothing changed


def test_maybe_reload_logs_a_refused_load_and_keeps_routing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    clock = Clock()
    registry = Registry(folder, clock=clock)
    before = registry.get()
    _break(folder)
    clock.now = 10.0
    with caplog.at_level(logging.ERROR):
        assert registry.maybe_reload() is False
    assert registry.get() is before
    logged = capsys.readouterr().out + caplog.text
    assert "rules.refused" in logged
    assert "nobody" in logged
    clock.now = 20.0
    assert registry.maybe_reload() is False  # not retried until the files change again


def test_process_wide_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "roads")])
    monkeypatch.setattr(registry_module, "_default", None)
    monkeypatch.setenv("CLOSELOOP_RULES_DIR", str(folder))
    reset_settings_cache()
    assert decide(registry_module.get(), incident(), WEDNESDAY_10AM).lead == "roads"
    other = write_rules(tmp_path / "other", [route("r", "gas")])
    registry_module.configure(other)
    assert registry_module.reload().version == registry_module.get().version
    assert decide(registry_module.get(), incident(), WEDNESDAY_10AM).lead == "gas"
    monkeypatch.setattr(registry_module, "_default", None)
    reset_settings_cache()


def test_loading_warns_of_endpoints_inside_the_network_without_their_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.rules.conftest import BASE

    departments = [dict(d) for d in BASE["departments"]]
    departments[1]["url"] = "http://169.254.169.254/latest?api_key=K3Y-of-water"
    departments[2]["url"] = "https://gas.example.cn/hooks?api_key=K3Y-of-gas"
    folder = write_rules(tmp_path / "rules", [route("r", "water")], departments=departments)
    monkeypatch.setenv("CLOSELOOP_ENVIRONMENT", "production")
    reset_settings_cache()
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        Registry(folder).reload()
    finally:
        configure_logging("INFO", "json")
        monkeypatch.delenv("CLOSELOOP_ENVIRONMENT")
        reset_settings_cache()
    warned = [
        line["warning"]
        for line in map(json.loads, stream.getvalue().splitlines())
        if line["event"] == "rules.endpoint_inside_network"
    ]
    assert len(warned) == 8  # the link-local one and the seven on loopback; not gas
    assert any(
        "department water: webhook URL http://169.254.169.254/latest?api_key=[redacted]" in w
        and "link-local" in w
        for w in warned
    )
    assert "K3Y" not in stream.getvalue()


def test_reading_the_process_wide_rules_picks_up_a_changed_folder_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any reader (a webhook worker too, which runs no pipeline task) sees an edit: within
    the check interval through `get()`, at once through `get(look_now=True)`."""
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    monkeypatch.setattr(registry_module, "_default", registry_module._default)
    clock = Clock()
    registry_module.configure(folder)._clock = clock
    assert decide(registry_module.get(), incident(), WEDNESDAY_10AM).lead == "water"
    write_rules(folder, [route("r", "gas", resolve_within="2d")])
    assert decide(registry_module.get(), incident(), WEDNESDAY_10AM).lead == "water"
    assert decide(registry_module.get(look_now=True), incident(), WEDNESDAY_10AM).lead == "gas"
    write_rules(folder, [route("r", "roads", resolve_within="3d")])
    clock.now = 2.5
    assert decide(registry_module.get(), incident(), WEDNESDAY_10AM).lead == "roads"
