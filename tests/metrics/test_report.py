"""Every figure of the report on the hand-built dataset (tests/support/metrics_dataset.py),
against numbers worked out by hand, on PostgreSQL and on the embedded SQLite.

Window: [Mar 2 00:00, Mar 4 00:00) Asia/Shanghai = hours [0, 48) of the dataset. The
cohort is the cases filed in it: W1–W8, W11–W13 and G1–G6 (W9, W10 before it; W14 at its
end, outside).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from tests.support.metrics_dataset import WINDOW_HOURS, seed
from worker.db.session import session_factory
from worker.metrics.definitions import GroupBy
from worker.metrics.report import MetricsReport, MetricsRow, build_report

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, tzinfo=SHANGHAI)
END = START + timedelta(hours=WINDOW_HOURS)
H = 3600.0

# Each row: received, merged, cancelled, closed, then rates as (numerator, denominator):
# response, closure, on time, resolution, satisfaction; callbacks, unanswered; time to close
# as (closed, median h, p90 h); backlog, overdue.
WATER = dict(
    # received: W1–W7, W11, W12, W13 = 10; merged: W8 (folded into W1, water's); cancelled W7
    received=10, merged=1, cancelled=1,
    # closed by h48: W1, W2, W3 (W4 was reopened, W11 closed at h51) = 3, of 10 − 1 cancelled
    closed=3, closure=(3, 9),
    # water's lead tasks: W1 ✓, W2 ✗(late), W3 ✓ ✗(round 2 late), W4 ✓ ✗(never), W5 ✓, W6 ✓,
    # W7 ✗(cancelled), W11 ✓, W12 ✗(not yet), W13 ✓, G5 round 1 ✗(returned) = 7 of 13
    response=(7, 13),
    # W1 resolved h10 ≤ h25 ✓, W2 h20 > h10 ✗, W3 h26 ≤ h30 ✓
    on_time=(2, 3),
    # callbacks: W1 (yes, yes), W2 (yes, no), W3 (yes, yes) (yes, no), W4 (no answer);
    # W11's came after the end. Solved 4 of 4 answered; satisfied 2 of 4 answered
    callbacks=5, unanswered=1, resolution=(4, 4), satisfaction=(2, 4),
    # times to close: W1 11 h, W2 20 h, W3 25 h (filed h3, final close h28).
    # median 20; p90 at rank 0.9 × 2 = 1.8: 20 + 0.8 × (25 − 20) = 24
    time_to_close=(3, 20, 24),
    # open at h48: W4, W5, W6, W12, W10 (filed before), W11 (resolved after) = 6; overdue:
    # W4 (acknowledge due h10), W5 (resolve due h20), W10 (ack h-19), W11 (resolve h45) = 4
    backlog=6, overdue=4,
)  # fmt: skip
GAS = dict(
    received=4, merged=0, cancelled=0,  # G1, G2, G5, G6
    closed=3, closure=(3, 4),  # G1, G2, G6
    response=(3, 4),  # G1 ✓, G2 ✗ (h15, due h13), G5 round 2 ✓, G6 ✓
    on_time=(3, 3),  # G1 h12 ≤ h14, G2 h16 ≤ h36, G6 h28 ≤ h30
    # G1 (yes, declined to rate), G6 (no answer) (no, no)
    callbacks=3, unanswered=1, resolution=(1, 2), satisfaction=(0, 1),
    # 3 h, 5 h, 4 h → sorted 3, 4, 5: median 4, p90 4 + 0.8 × 1 = 4.8
    time_to_close=(3, 4, 4.8),
    backlog=1, overdue=0,  # G5, deadlines ahead
)  # fmt: skip
NO_DEPARTMENT = dict(
    received=2, merged=0, cancelled=1,  # G3 (triaged), G4 (cancelled before routing)
    closed=0, closure=(0, 1), response=(0, 0), on_time=(0, 0),
    callbacks=0, unanswered=0, resolution=(0, 0), satisfaction=(0, 0),
    time_to_close=(0, None, None),
    backlog=1, overdue=0,  # G3, no deadline yet; W14 was filed at the end, not before it
)  # fmt: skip
TOTAL = dict(
    received=16, merged=1, cancelled=2, closed=6, closure=(6, 14),
    response=(10, 17), on_time=(5, 6),
    callbacks=8, unanswered=2, resolution=(5, 6), satisfaction=(2, 5),
    # 3, 4, 5, 11, 20, 25 h: median (5 + 11) / 2 = 8; p90 at rank 4.5: 20 + 0.5 × 5 = 22.5
    time_to_close=(6, 8, 22.5),
    backlog=8, overdue=4,
)  # fmt: skip
GULOU = dict(
    # water's figures without W10 (xuanwu) and without G5's returned water task
    received=10, merged=1, cancelled=1, closed=3, closure=(3, 9),
    response=(7, 12), on_time=(2, 3),
    callbacks=5, unanswered=1, resolution=(4, 4), satisfaction=(2, 4),
    time_to_close=(3, 20, 24),
    backlog=5, overdue=3,  # W4, W5, W6, W11, W12; overdue W4, W5, W11
)  # fmt: skip
XUANWU = dict(
    received=6, merged=0, cancelled=1, closed=3, closure=(3, 5),  # G1–G6
    response=(3, 5),  # gas's 3 of 4, and G5's returned water task ✗
    on_time=(3, 3),
    callbacks=3, unanswered=1, resolution=(1, 2), satisfaction=(0, 1),
    time_to_close=(3, 4, 4.8),
    backlog=3, overdue=1,  # G3, G5, W10 (never acknowledged)
)  # fmt: skip
MARCH_2 = dict(
    # filed h0–h24: W1, W2, W3, W4, W5, W7, W13, G1–G5 = 12, and W8 merged
    received=12, merged=1, cancelled=2, closed=5, closure=(5, 10),  # W1 W2 W3 G1 G2
    # W1 ✓ W2 ✗ W3 ✓✗ W4 ✓✗ W5 ✓ W7 ✗ W13 ✓ G1 ✓ G2 ✗ G5 ✗✓ = 7 of 13
    response=(7, 13), on_time=(4, 5),  # W2 late
    # W1 (y, y) W2 (y, n) W3 (y, y) (y, n) W4 (none) G1 (y, declined)
    callbacks=6, unanswered=1, resolution=(5, 5), satisfaction=(2, 4),
    # 3, 5, 11, 20, 25 h: median 11; p90 at rank 3.6: 20 + 0.6 × 5 = 23
    time_to_close=(5, 11, 23),
    # open at Mar 3 00:00 (h24): W10, W4, W5, W3 (resolved finally at h26), G3, G5 = 6;
    # overdue then: W10 (ack h-19), W4 (ack h10), W5 (resolve h20) = 3
    backlog=6, overdue=3,
)  # fmt: skip
MARCH_3 = dict(
    received=4, merged=0, cancelled=0, closed=1, closure=(1, 4),  # W6 W11 W12 G6; G6 closed
    response=(3, 4), on_time=(1, 1),  # W6 ✓ W11 ✓ W12 ✗ G6 ✓
    callbacks=2, unanswered=1, resolution=(0, 1), satisfaction=(0, 1),
    time_to_close=(1, 4, 4),
    backlog=8, overdue=4,  # at h48: the totals'
)  # fmt: skip


def _figures(row: MetricsRow) -> dict[str, Any]:
    def share(name: str) -> tuple[int, int]:
        value = getattr(row, f"{name}_rate")
        return (value.numerator, value.denominator)

    ttc = row.time_to_close
    return dict(
        received=row.received, merged=row.merged, cancelled=row.cancelled, closed=row.closed,
        closure=share("closure"), response=share("response"), on_time=share("on_time_closure"),
        callbacks=row.callbacks, unanswered=row.callbacks_unanswered,
        resolution=share("resolution"), satisfaction=share("satisfaction"),
        time_to_close=(
            ttc.closed,
            None if ttc.median_seconds is None else round(ttc.median_seconds / H, 6),
            None if ttc.p90_seconds is None else round(ttc.p90_seconds / H, 6),
        ),
        backlog=row.backlog, overdue=row.overdue,
    )  # fmt: skip


def _report(engine: Engine, by: GroupBy) -> MetricsReport:
    with session_factory(engine)() as session:
        return build_report(session, START, END, by, SHANGHAI)


@pytest.fixture
def city(any_engine: Engine) -> Engine:
    seed(any_engine, START)
    return any_engine


def test_by_department(city: Engine) -> None:
    report = _report(city, GroupBy.department)
    rows = {row.key: _figures(row) for row in report.groups}
    assert rows == {"water": WATER, "gas": GAS, None: NO_DEPARTMENT}
    assert [row.key for row in report.groups] == ["water", "gas", None]  # most received first
    assert _figures(report.total) == TOTAL


def test_by_district(city: Engine) -> None:
    report = _report(city, GroupBy.district)
    assert {row.key: _figures(row) for row in report.groups} == {
        "gulou": GULOU,
        "xuanwu": XUANWU,
    }
    assert _figures(report.total) == TOTAL


def test_by_day_in_the_city_time_zone(city: Engine) -> None:
    report = _report(city, GroupBy.day)
    assert [row.key for row in report.groups] == ["2026-03-02", "2026-03-03"]
    assert [_figures(row) for row in report.groups] == [MARCH_2, MARCH_3]
    assert report.groups[0].starts_at == START
    assert report.groups[1].ends_at == END


def test_a_rate_over_nothing_is_no_data_not_zero(city: Engine) -> None:
    none = next(row for row in _report(city, GroupBy.department).groups if row.key is None)
    assert none.response_rate.value is None
    assert none.closure_rate.value == 0.0


def test_rates_carry_their_value(city: Engine) -> None:
    water = _report(city, GroupBy.department).groups[0]
    assert water.closure_rate.value == pytest.approx(3 / 9)
    assert water.on_time_closure_rate.value == pytest.approx(2 / 3)


def test_by_week_and_category(city: Engine) -> None:
    weeks = _report(city, GroupBy.week).groups
    assert [row.key for row in weeks] == ["2026-W10"]  # Monday 2 March starts ISO week 10
    assert _figures(weeks[0]) == TOTAL
    categories = {row.key: row.received for row in _report(city, GroupBy.category).groups}
    assert categories == {"water.pipe_burst": 10, "gas.leak": 6}


def test_an_empty_window_is_all_no_data(any_engine: Engine) -> None:
    report = _report(any_engine, GroupBy.department)
    assert report.groups == []
    figures = _figures(report.total)
    assert figures["received"] == 0
    assert figures["closure"] == (0, 0)
    assert figures["time_to_close"] == (0, None, None)
    assert report.total.closure_rate.value is None
