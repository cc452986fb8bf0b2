"""`closeloop rules ...` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.rules.conftest import EXAMPLE_CITY, route, write_rules
from worker.cli.main import app
from worker.config import reset_settings_cache

runner = CliRunner()
BAD = Path(__file__).parent / "bad"


def test_check_ok() -> None:
    result = runner.invoke(app, ["rules", "check", str(EXAMPLE_CITY)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 20 departments, 53 categories, 4 districts")


@pytest.mark.parametrize(("environment", "warned"), [("production", True), ("development", False)])
def test_check_warns_of_endpoints_inside_the_network_outside_development(
    monkeypatch: pytest.MonkeyPatch, environment: str, warned: bool
) -> None:
    # The example city's departments listen on loopback: right for `closeloop up`, and a
    # warning (not a refusal) anywhere else.
    monkeypatch.setenv("CLOSELOOP_ENVIRONMENT", environment)
    reset_settings_cache()
    try:
        result = runner.invoke(app, ["rules", "check", str(EXAMPLE_CITY)])
    finally:
        monkeypatch.delenv("CLOSELOOP_ENVIRONMENT")
        reset_settings_cache()
    assert result.exit_code == 0, result.output
    warning = (
        "warning: department water: webhook URL http://127.0.0.1:9900/hooks/water points "
        "inside this network (127.0.0.1 is a loopback address)"
    )
    assert (warning in result.stderr) is warned
    assert result.stderr.count("warning:") == (20 if warned else 0)


def test_check_reports_errors_and_exits_1() -> None:
    result = runner.invoke(app, ["rules", "check", str(BAD / "unknown-department.yaml")])
    assert result.exit_code == 1
    assert (
        "unknown-department.yaml:30:11: unknown department 'watr' (did you mean 'water'?)"
        in result.output
    )
    assert "refused: 1 error(s)" in result.output


def test_default_folder_comes_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    monkeypatch.setenv("CLOSELOOP_RULES_DIR", str(folder))
    reset_settings_cache()
    try:
        result = runner.invoke(app, ["rules", "check"])
    finally:
        monkeypatch.delenv("CLOSELOOP_RULES_DIR")
        reset_settings_cache()
    assert result.exit_code == 0
    assert "ok: 9 departments" in result.output


def test_test_passes_the_example_city() -> None:
    result = runner.invoke(
        app, ["rules", "test", str(EXAMPLE_CITY / "cases.yaml"), "--rules", str(EXAMPLE_CITY)]
    )
    assert result.exit_code == 0, result.output
    assert "50/50 cases passed" in result.output


def test_test_prints_a_diff_and_exits_1_on_a_miss(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        'at: "2025-01-15T23:30:00+08:00"\n'
        "cases:\n"
        "  - name: noise at night\n"
        "    incident: {source: hotline, category: housing.construction_noise, title: 半夜施工}\n"
        "    expect: {lead: housing, priority: high}\n"
        "  - name: gas\n"
        "    incident: {source: hotline, category: gas.leak, title: 煤气味}\n"
        "    expect: {lead: gas}\n"
    )
    result = runner.invoke(app, ["rules", "test", str(cases), "--rules", str(EXAMPLE_CITY)])
    assert result.exit_code == 1
    assert "MISS noise at night" in result.output
    assert "  lead:\n    - expected: housing\n    + got:      sanitation\n" in result.output
    assert "  priority:" not in result.output  # the priority expectation was met
    assert "1/2 cases passed" in result.output


def test_explain_shows_each_route_and_the_decision(tmp_path: Path) -> None:
    incident = tmp_path / "incident.json"
    incident.write_text(
        json.dumps({"source": "hotline", "category": "heating.no_heat", "title": "半夜暖气停了"})
    )
    result = runner.invoke(
        app,
        [
            "rules",
            "explain",
            str(incident),
            "--rules",
            str(EXAMPLE_CITY),
            "--at",
            "2025-01-16T02:30:00+08:00",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("life-safety: no child matched")
    assert any(line.startswith("  life-safety/gas-leak: no match") for line in lines)
    assert "      ✗ category heating.no_heat in [gas.leak, gas.pipe_damage]" in lines
    assert any(line.startswith("    utilities/heating/no-heat-at-night: matched") for line in lines)
    assert any(
        "✓ now 2025-01-16T02:30:00+08:00 inside window [night 22:00-06:00 Asia/Shanghai]" in line
        for line in lines
    )
    assert "lead:       heating" in lines
    assert "routes:     utilities/heating/no-heat-at-night" in lines


def test_explain_with_exclude(tmp_path: Path) -> None:
    incident = tmp_path / "incident.json"
    incident.write_text(
        json.dumps({"source": "hotline", "category": "roads.pothole", "title": "坑"})
    )
    result = runner.invoke(
        app,
        [
            "rules",
            "explain",
            str(incident),
            "--rules",
            str(EXAMPLE_CITY),
            "--exclude",
            "roads",
            "--at",
            "2025-01-15T10:00:00+08:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "roads: lead roads excluded" in result.output
    assert "lead:       ops-centre" in result.output


def test_explain_refuses_a_bad_incident(tmp_path: Path) -> None:
    incident = tmp_path / "incident.json"
    incident.write_text(json.dumps({"category": "roads.pothole"}))
    result = runner.invoke(app, ["rules", "explain", str(incident), "--rules", str(EXAMPLE_CITY)])
    assert result.exit_code == 2
    assert "not a valid incident" in result.output


def test_tree_is_indented_in_route_order() -> None:
    result = runner.invoke(app, ["rules", "tree", str(EXAMPLE_CITY)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("life-safety  [everything]  (group")
    assert lines[1].startswith(
        "  gas-leak  [category: gas.leak, gas.pipe_damage]  -> gas + fire  ack 15m / resolve 2h"
    )
    assert lines[1].endswith("continue")
    assert lines[-1].startswith("catch-all  [everything]  -> ops-centre")
