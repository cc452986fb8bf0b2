"""What each kind of answer means for a delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.webhooks.outcomes import Answer, Outcome, judge

T0 = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)


def answer(status: int | None = None, **fields: object) -> Answer:
    return Answer(T0, 12.0, status=status, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "outcome", "counts"),
    [
        (200, Outcome.delivered, False),
        (202, Outcome.delivered, False),
        (204, Outcome.delivered, False),
        (301, Outcome.failed, True),
        (302, Outcome.failed, True),
        (307, Outcome.failed, True),
        (400, Outcome.failed, True),
        (404, Outcome.failed, True),
        (410, Outcome.gone, False),
        (429, Outcome.failed, True),
        (500, Outcome.failed, True),
        (503, Outcome.failed, True),
    ],
)
def test_status_codes(status: int, outcome: Outcome, counts: bool) -> None:
    verdict = judge(answer(status), T0)
    assert verdict.outcome is outcome
    assert verdict.counts_against_endpoint is counts


def test_a_redirect_says_where_it_pointed_and_that_it_was_not_followed() -> None:
    verdict = judge(answer(301, location="https://elsewhere.example/hook"), T0)
    assert verdict.error == (
        "answered 301 (redirect to https://elsewhere.example/hook); redirects are not followed"
    )


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_read_on_429_and_503(status: int) -> None:
    verdict = judge(answer(status, retry_after="90"), T0)
    assert verdict.retry_after == T0 + timedelta(seconds=90)


def test_retry_after_is_ignored_on_other_errors() -> None:
    assert judge(answer(500, retry_after="90"), T0).retry_after is None


def test_errors_quote_the_start_of_the_answer_on_one_line() -> None:
    verdict = judge(answer(500, excerpt="Internal\nerror " + "x" * 1000), T0)
    assert verdict.error is not None
    assert verdict.error.startswith("answered 500: Internal error xxx")
    assert len(verdict.error) <= 300


def test_no_answer_counts_against_the_endpoint_but_our_own_misconfiguration_does_not() -> None:
    timeout = judge(answer(error="no answer within 15 s (timeout)"), T0)
    assert (timeout.outcome, timeout.counts_against_endpoint) == (Outcome.failed, True)
    unsigned = judge(answer(error="secret missing", reached_endpoint=False), T0)
    assert (unsigned.outcome, unsigned.counts_against_endpoint) == (Outcome.failed, False)
