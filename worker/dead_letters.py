"""Dead letters: work that could not be done, kept with its reason for a person to look at.

Written in a transaction of its own, so that recording the failure never depends on the
transaction that failed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from worker.db.models import DeadLetter
from worker.logging import get_logger, scrub_text

log = get_logger("closeloop.dead_letters")

MAX_BODY_CHARS = 1_000_000


def record_dead_letter(
    engine: Engine,
    *,
    kind: str,
    reason: str,
    body: str | bytes,
    details: dict[str, Any] | None = None,
) -> int:
    text = body.decode("utf-8", errors="backslashreplace") if isinstance(body, bytes) else body
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + f"\n[... {len(text) - MAX_BODY_CHARS} characters cut]"
    with Session(engine) as session, session.begin():
        letter = DeadLetter(kind=kind, reason=reason, body=text, details=details or {})
        session.add(letter)
        session.flush()
        letter_id = letter.id
    log.error(
        "dead letter recorded", kind=kind, reason=scrub_text(reason), dead_letter_id=letter_id
    )
    return letter_id
