"""The retry schedule, jitter and Retry-After: pure functions, table-driven."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from worker.config import Settings
from worker.webhooks.schedule import (
    RETRY_AFTER_CAP,
    jittered,
    next_attempt_at,
    parse_duration,
    parse_retry_after,
    parse_schedule,
)

T0 = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("5s", 5 * S),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1d12h", timedelta(hours=36)),
        (" 10h ", timedelta(hours=10)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "s", "5x", "-5s", "5 minutes", "1.5s", "7"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="like 30m, 2h, 7d"):
        parse_duration(text)


def test_the_published_schedule_is_the_default() -> None:
    assert parse_schedule(Settings().webhook_schedule) == (
        timedelta(0),
        5 * S,
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    )


@pytest.mark.parametrize("text", ["0s,1s,1s", "0s 1s 1s", "0s, 1s,  1s"])
def test_schedule_separators(text: str) -> None:
    assert parse_schedule(text) == (timedelta(0), S, S)


def test_a_bad_schedule_stops_the_settings_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSELOOP_WEBHOOK_SCHEDULE", "0s,soon")
    with pytest.raises(ValueError, match="bad duration 'soon'"):
        Settings()
    monkeypatch.setenv("CLOSELOOP_WEBHOOK_SCHEDULE", " , ")
    with pytest.raises(ValueError, match="empty"):
        Settings()


def test_jitter_stays_within_its_fraction_and_spreads() -> None:
    rng = random.Random(7)
    delays = [jittered(timedelta(minutes=5), 0.15, rng) for _ in range(500)]
    assert all(timedelta(minutes=4.25) <= d <= timedelta(minutes=5.75) for d in delays)
    assert len(set(delays)) > 400
    assert jittered(timedelta(0), 0.15, rng) == timedelta(0)
    assert jittered(timedelta(minutes=5), 0, rng) == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", T0 + 120 * S),
        ("0", T0),
        ("Tue, 24 Nov 2026 08:10:00 GMT", T0 + timedelta(minutes=10)),
        ("in a while", None),
        ("9999999999", T0 + RETRY_AFTER_CAP),
    ],
)
def test_retry_after(header: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(header, T0) == expected


SCHEDULE = (timedelta(0), 5 * S, timedelta(minutes=5))


@pytest.mark.parametrize(
    ("attempts_made", "retry_after", "expected"),
    [
        (0, None, T0),
        (1, None, T0 + 5 * S),
        (2, None, T0 + timedelta(minutes=5)),
        (3, None, None),  # the schedule is used up: a dead letter
        (1, T0 + 60 * S, T0 + 60 * S),  # Retry-After later than the slot wins
        (2, T0 + 60 * S, T0 + timedelta(minutes=5)),  # earlier than the slot: the slot
        (3, T0 + 60 * S, None),  # Retry-After never extends the schedule
    ],
)
def test_next_attempt(
    attempts_made: int, retry_after: datetime | None, expected: datetime | None
) -> None:
    assert next_attempt_at(SCHEDULE, attempts_made, T0, retry_after=retry_after) == expected
