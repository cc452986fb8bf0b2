"""What an endpoint's answer means for the delivery: delivered, gone, or try again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from worker.urls import scrub_urls
from worker.webhooks.schedule import parse_retry_after

ERROR_CHARS = 300


class Outcome(StrEnum):
    delivered = "delivered"
    gone = "gone"  # 410: the department took the endpoint away
    failed = "failed"


@dataclass(frozen=True)
class Answer:
    """One attempt as it happened on the wire (or why it never got there)."""

    started_at: datetime
    duration_ms: float
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    location: str | None = None
    excerpt: str = ""
    reached_endpoint: bool = True  # False: our configuration stopped it before sending


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    error: str | None = None
    retry_after: datetime | None = None
    counts_against_endpoint: bool = False


def judge(answer: Answer, at: datetime) -> Verdict:
    status = answer.status
    if status is None:
        return Verdict(
            Outcome.failed,
            error=_cut(answer.error or "no answer"),
            counts_against_endpoint=answer.reached_endpoint,
        )
    if 200 <= status < 300:
        return Verdict(Outcome.delivered)
    if status == 410:
        return Verdict(Outcome.gone, error="answered 410 Gone: the endpoint is disabled")
    if 300 <= status < 400:
        # A redirect could take a signed task to a host the rules never named.
        where = f" to {answer.location}" if answer.location else ""
        return Verdict(
            Outcome.failed,
            error=_cut(f"answered {status} (redirect{where}); redirects are not followed"),
            counts_against_endpoint=True,
        )
    retry_after = parse_retry_after(answer.retry_after, at) if status in (429, 503) else None
    said = f": {answer.excerpt}" if answer.excerpt else ""
    return Verdict(
        Outcome.failed,
        error=_cut(f"answered {status}{said}"),
        retry_after=retry_after,
        counts_against_endpoint=True,
    )


def _cut(text: str) -> str:
    # The error is kept (attempt log, audit store, API): an exception's message or an
    # endpoint's answer may name a URL with its key, and a redirect's `Location` does.
    text = scrub_urls(" ".join(text.split()))
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
