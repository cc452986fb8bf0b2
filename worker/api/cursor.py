"""Keyset pagination cursors: the sort time and id of the last row of a page, opaque to
clients. A page after a cursor never skips or repeats a row, however the table grows."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson
from fastapi.exceptions import RequestValidationError


def encode(at: datetime, row_id: str) -> str:
    raw = orjson.dumps([at.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    """The (time, id) of a cursor this API gave out; 422 naming `cursor` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = orjson.loads(raw)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(row_id, str):
            raise ValueError(cursor)
    except (binascii.Error, ValueError, TypeError) as error:
        problem = {"loc": ("query", "cursor"), "msg": "not a cursor this API gave out"}
        raise RequestValidationError([{**problem, "type": "value_error"}]) from error
    return moment, row_id
