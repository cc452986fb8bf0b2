"""structlog, configured once for every process: API, worker, beat and CLI.

JSON lines when stderr is not a terminal (what a log shipper wants), readable colours when it
is. Standard-library loggers (Celery, uvicorn, SQLAlchemy) go through the same processors so
that their lines are JSON too and are redacted too.

Citizens' names, phone numbers and e-mail addresses are personal data: `redact_personal_data`
blanks them by key anywhere in an event, and scrubs phone- and e-mail-shaped text from every
string value, so a careless `log.info("...", body=raw_text)` cannot leak them either.
Credentials are scrubbed the same way: `whsec_` and `cl_` secrets, the userinfo and query
values of URLs (`worker.urls`), and credential-named query parameters of a bare path.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.urls import scrub_urls

REDACTED = "[redacted]"

_PERSONAL_KEYS = frozenset(
    {
        "name",
        "phone",
        "email",
        "reporter",
        "reporter_name",
        "reporter_phone",
        "reporter_email",
        "contact",
        "authorization",
        "secret",
        "token",
    }
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Seven to fifteen digits, optionally separated by single spaces or dashes, optionally with a
# leading +: every phone format the hotline sees. ISO dates are shaped alike and are kept. A
# number may be a whole segment of a path (`GET /v1/cases/13912345678` in an access log).
_PHONE = re.compile(r"(?<![\w.:-])(?!\d{4}-\d{2}-\d{2})\+?\d(?:[ -]?\d){6,14}(?![\w:-]|\.\w)")
_WHSEC = re.compile(r"whsec_[A-Za-z0-9+/=]+")
# API tokens (`worker.auth`): a client may send one in a query string, and the access log
# writes the path with its query.
_API_TOKEN = re.compile(r"(?<![A-Za-z0-9_])cl_[A-Za-z0-9_-]{16,}")
# Values of query parameters named like credentials, in a path without scheme and host (an
# access log line); absolute URLs lose every query value (`worker.urls`).
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:api[_-]?key|access[_-]?token|token|key|password|passwd|secret|sig|"
    r"signature|auth)=)[^&\s\"'#]+"
)


def scrub_text(text: str) -> str:
    text = scrub_urls(text)
    text = _SECRET_QUERY.sub(lambda found: found.group(1) + REDACTED, text)
    text = _API_TOKEN.sub(REDACTED, text)
    text = _WHSEC.sub(REDACTED, text)
    text = _EMAIL.sub(REDACTED, text)
    return _PHONE.sub(REDACTED, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_personal(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return value


def _is_personal(key: object) -> bool:
    return isinstance(key, str) and key.lower() in _PERSONAL_KEYS


def redact_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    redacted: MutableMapping[str, Any] = {}
    for key, value in event_dict.items():
        redacted[key] = REDACTED if _is_personal(key) and value is not None else _scrub(value)
    return dict(redacted)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]


class QuietRoutine(logging.Filter):
    """Celery's INFO lines about beat's frequent scans ("Sending due task", "Task ...
    received", "succeeded", "Discarding revoked task" for a scan superseded by the next) at
    DEBUG instead: every few seconds, they drowned what matters. Shown again with the log
    level at DEBUG; a scan that fails still logs its ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _about_routine_task(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _about_routine_task(record: logging.LogRecord) -> bool:
    from worker.tasks.names import ROUTINE

    if not record.name.startswith("celery."):
        return False
    # Celery names the task in the message's arguments, or in `data` beside them.
    data = getattr(record, "data", None)
    named = [data.get("name")] if isinstance(data, Mapping) else []
    if isinstance(record.args, tuple):
        named.extend(record.args)
    elif isinstance(record.args, Mapping):
        named.append(record.args.get("name"))
    return any(isinstance(name, str) and name in ROUTINE for name in named)


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Set up structlog and the standard library's root logger. Safe to call again."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not _is_terminal(stream))
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(stream))
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.addFilter(QuietRoutine())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def get_logger(name: str | None = None, **bound: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**bound) if bound else logger
