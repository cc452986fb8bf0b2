"""Standard Webhooks signing (https://www.standardwebhooks.com/).

A department verifies `webhook-signature` over `webhook-id.webhook-timestamp.body`. During a
secret rotation the department's variable holds the new and the old secret; we sign with
each, space-separated, so the department's verifier passes whichever one it knows.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def parse_secrets(raw: str | None) -> tuple[str, ...]:
    """Secrets as an environment variable holds them: separated by spaces or commas."""
    return tuple(part for part in re.split(r"[,\s]+", raw or "") if part)


def signature(webhook_id: str, at: datetime, body: bytes, secrets: Sequence[str]) -> str:
    if not secrets:
        raise ValueError("no secret to sign with; a webhook is never sent unsigned")
    text = body.decode("utf-8")
    return " ".join(Webhook(secret).sign(webhook_id, at, text) for secret in secrets)


def signed_headers(
    webhook_id: str, body: bytes, secrets: Sequence[str], at: datetime | None = None
) -> dict[str, str]:
    # The timestamp is the real time of sending, never the service's (testable) clock: the
    # department checks it against its own clock to refuse replays.
    at = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(webhook_id, at, body, secrets),
    }
