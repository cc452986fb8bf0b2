"""Dead letters: work that could not be done, kept with its reason for a person to look at.

Written in a transaction of its own, so that recording the failure never depends on the
transaction that failed. Whatever the bytes were, the letter can be stored: the bytes go into
`raw` as they came, and every text (body, reason, details) is made storable first, since
PostgreSQL refuses a NUL in text and in JSON, and no database takes a lone surrogate.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from worker.db.models import DeadLetter
from worker.logging import get_logger, scrub_text

log = get_logger("closeloop.dead_letters")

MAX_BODY_CHARS = 1_000_000
MAX_RAW_BYTES = 1024 * 1024


def storable_text(text: str) -> str:
    """`text` with what no database column takes written out as escapes: NUL as `\\x00`, a
    lone surrogate (from undecodable bytes) as `\\udcXX`."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def storable(value: Any) -> Any:
    """A JSON value with every string in it (keys too) made `storable_text`."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return storable_text(str(value))


def readable(body: str | bytes) -> str:
    """The body as text a person can read, cut to `MAX_BODY_CHARS`."""
    text = body.decode("utf-8", errors="backslashreplace") if isinstance(body, bytes) else body
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + f"\n[... {len(text) - MAX_BODY_CHARS} characters cut]"
    return storable_text(text)


def record_dead_letter(
    engine: Engine,
    *,
    kind: str,
    reason: str,
    body: str | bytes,
    details: dict[str, Any] | None = None,
    raw: bytes | None = None,
) -> int:
    """Keep `body` as readable text and `raw` (by default a bytes `body`) exactly."""
    details = storable(details or {})
    if raw is None and isinstance(body, bytes):
        raw = body
    if raw is not None and len(raw) > MAX_RAW_BYTES:
        details["raw_bytes"] = len(raw)  # only the first MAX_RAW_BYTES are kept
        raw = raw[:MAX_RAW_BYTES]
    letter = DeadLetter(
        kind=kind, reason=storable_text(reason), body=readable(body), raw=raw, details=details
    )
    with Session(engine) as session, session.begin():
        session.add(letter)
        session.flush()
        letter_id = letter.id
    log.error(
        "dead letter recorded", kind=kind, reason=scrub_text(reason), dead_letter_id=letter_id
    )
    return letter_id
