"""Keyset pagination cursors: the sort time and id of the last row of a page, opaque to
clients. A page after a cursor never skips or repeats a row, however the table grows."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import Query
from fastapi.exceptions import RequestValidationError

# What the schema says of a cursor: unpadded base64url, as `encode` writes it.
PATTERN = r"^[A-Za-z0-9_-]{1,200}$"
# Row ids are UUIDs; anything else in a cursor was not written by this API.
_ROW_ID = re.compile(r"^[0-9a-f-]{1,64}$")

Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        description="`next_cursor` of the previous page, as it was given.",
        json_schema_extra={"pattern": PATTERN},
    ),
]


def encode(at: datetime, row_id: str) -> str:
    raw = orjson.dumps([at.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    """The (time, id) of a cursor this API gave out; 422 naming `cursor` for anything else."""
    try:
        if not re.match(PATTERN, cursor):
            raise ValueError(cursor)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = orjson.loads(raw)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(row_id, str) or not _ROW_ID.match(row_id):
            raise ValueError(cursor)
        moment.astimezone(UTC)  # the database converts it: a date that cannot be is no cursor
    except (binascii.Error, ValueError, TypeError, OverflowError) as error:
        problem = {"loc": ("query", "cursor"), "msg": "not a cursor this API gave out"}
        raise RequestValidationError([{**problem, "type": "value_error"}]) from error
    return moment, row_id
