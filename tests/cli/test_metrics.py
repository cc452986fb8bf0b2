"""`closeloop metrics`: the report's figures as a table, JSON and CSV, from the database."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.metrics.test_report import START, TOTAL
from tests.support.metrics_dataset import seed
from worker.cli.main import app
from worker.config import reset_settings_cache
from worker.db.session import engine_for

runner = CliRunner()
WINDOW = ["--since", "2026-03-02T00:00:00+08:00", "--until", "2026-03-04T00:00:00+08:00"]


@pytest.fixture
def city(pg_engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    seed(pg_engine, START)
    monkeypatch.setenv("CLOSELOOP_DATABASE_URL", pg_url)
    reset_settings_cache()
    yield
    reset_settings_cache()
    engine_for.cache_clear()


def _run(*args: str) -> str:
    result = runner.invoke(app, ["metrics", *WINDOW, *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.usefixtures("city")
def test_table_by_department() -> None:
    output = _run("--by", "department")
    assert "closeloop metrics by department, 2026-03-02 00:00 – 2026-03-04 00:00" in output
    water = next(line for line in output.splitlines() if " water " in line)
    # received, merged, closed; closure 3/9; median 20 h; backlog 6, overdue 4
    assert "│       10 │      1 │      3 │" in water
    assert "33% (3/9)" in water
    assert "20h 00m" in water
    assert water.rstrip(" │").endswith("6 │       4")
    assert "(not routed yet)" in output
    assert "— (0/0)" in output  # no lead tasks at all: no data, not 0%


@pytest.mark.usefixtures("city")
def test_json_is_the_api_report() -> None:
    report = json.loads(_run("--by", "day", "--json"))
    assert [group["key"] for group in report["groups"]] == ["2026-03-02", "2026-03-03"]
    assert report["total"]["received"] == TOTAL["received"]


@pytest.mark.usefixtures("city")
def test_csv_one_line_per_group_and_the_total() -> None:
    rows = list(csv.DictReader(io.StringIO(_run("--by", "district", "--csv"))))
    assert [row["district"] for row in rows] == ["gulou", "xuanwu", "total"]
    assert rows[0]["response_rate_numerator"] == "7"
    assert rows[0]["response_rate_denominator"] == "12"
    assert rows[2]["backlog"] == str(TOTAL["backlog"])


def test_bad_window_is_named() -> None:
    result = runner.invoke(app, ["metrics", "--since", "last tuesday"])
    assert result.exit_code == 2
    assert "neither like 7d" in result.output
