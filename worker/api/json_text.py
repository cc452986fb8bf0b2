"""Reading a JSON body strictly, and saying truly what is wrong with one that is refused.

Python's `json` (which FastAPI parses with) takes `NaN`, `Infinity` and numbers past a
double's range (`1e400` becomes infinity), none of which is JSON (RFC 8259) and none of
which a column can store; and it fails on a deeply nested body or a number of thousands of
digits with errors that FastAPI reports as "cannot parse the body". Here every body sent as
JSON is read once by orjson, which refuses all of these, and each refusal gets its reason.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import orjson

MAX_DEPTH = 32
_NOT_NUMBERS = (b"NaN", b"Infinity", b"-Infinity")
_WIDE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


_TOO_DEEP = f"the JSON is nested deeper than {MAX_DEPTH} levels; no body here needs that many"


class NotJson(ValueError):
    """The body is not JSON this API takes; the message says why, for the caller."""


def read_json(body: bytes) -> Any:
    """The parsed body, or NotJson saying what to fix."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise NotJson(_why_not(body, error)) from None
    if _deeper_than(value, MAX_DEPTH):
        raise NotJson(_TOO_DEEP)
    return value


def _why_not(body: bytes, error: orjson.JSONDecodeError) -> str:
    if _is_wide_unicode(body):
        return "not valid JSON: the body is UTF-16 or UTF-32 text; send it as UTF-8"
    reason = error.msg
    at = error.pos
    if "not valid UTF-8" in reason:
        return "not valid JSON: the body must be UTF-8 text"
    if "depth limit" in reason:
        return _TOO_DEEP
    if "infinity" in reason:
        return (
            f"not valid JSON at character {at}: the number is too large "
            "(beyond a 64-bit float); send it as a string if it is an id"
        )
    if body[at:].lstrip(b"-").startswith(_NOT_NUMBERS[:2]):
        return f"not valid JSON at character {at}: NaN and Infinity are not JSON numbers"
    return _syntax_error(body, error)


def _syntax_error(body: bytes, error: orjson.JSONDecodeError) -> str:
    # Python's decoder words syntax errors better ("Expecting ',' delimiter"); where it takes
    # what orjson does not (a lone surrogate `\ud800`, a BOM), orjson's own reason stands.
    try:
        json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as python:
        if isinstance(python, json.JSONDecodeError):
            return f"not valid JSON at character {python.pos}: {python.msg}"
    return f"not valid JSON at character {error.pos}: {error.msg}"


def _is_wide_unicode(body: bytes) -> bool:
    # JSON text starts with an ASCII character, so UTF-16 or UTF-32 shows as a NUL byte among
    # the first bytes (RFC 4627, section 3), or a byte order mark.
    return body.startswith(_WIDE_BOMS) or b"\x00" in body[:4]


def _deeper_than(value: Any, limit: int) -> bool:
    # Stops descending at the limit, so a deep body cannot exhaust the stack here.
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(_deeper_than(item, limit - 1) for item in value.values())
    if isinstance(value, list):
        return any(_deeper_than(item, limit - 1) for item in value)
    return False
