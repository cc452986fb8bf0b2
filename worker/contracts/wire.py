"""Strict scalar types for the wire: what a client must send, with no guessing.

pydantic's lax mode would take `true` as the latitude 1.0, `"yes"` as true and the number 0
as a date in 1970; a request that says such things is a mistake, answered 422 with the
field named, rather than stored as something the caller never meant. What clients send
legitimately stays accepted: an integer where a number is wanted, an ISO 8601 string for a
date.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AllowInfNan,
    AwareDatetime,
    BeforeValidator,
    Field,
    Strict,
    StringConstraints,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_ATTRIBUTE_TEXT = 500
_A_NUMBER = re.compile(r"\s*[-+]?\d+(\.\d*)?\s*")

# A JSON number: an integer counts, `true` does not; NaN and the infinities are no numbers.
Number = Annotated[float, Strict(), AllowInfNan(False)]
Flag = Annotated[bool, Strict()]
Count = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]


def _a_date_not_a_number(value: Any) -> Any:
    # pydantic would take a number as seconds since 1970: say what is wanted instead.
    if isinstance(value, int | float) or (isinstance(value, str) and _A_NUMBER.fullmatch(value)):
        raise ValueError(
            "give a date and time in ISO 8601 with its UTC offset, such as "
            "2026-11-24T08:15:00+08:00, not a number"
        )
    return value


def _fits_in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00+14:00 is a valid string and no instant in UTC: converting it, as the
    # database does, overflows.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "is outside the dates that can be stored (years 1 to 9999 in UTC): check the year "
            "and the UTC offset"
        ) from None
    return value


Moment = Annotated[
    AwareDatetime, BeforeValidator(_a_date_not_a_number), AfterValidator(_fits_in_utc)
]


def _attribute_value(value: Any) -> Any:
    # One message per mistake, instead of one per member of the union below.
    if isinstance(value, bool) or value is None:
        if value is None:
            raise ValueError("must be text, a number or true/false, not null")
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("an integer must fit in 64 bits (-2^63 to 2^63-1); send it as text")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_TEXT:
            raise ValueError(f"text of at most {MAX_ATTRIBUTE_TEXT} characters")
        return value
    raise ValueError("must be text, a number or true/false (not a list or an object)")


AttributeValue = Annotated[
    Annotated[str, Strict(), StringConstraints(max_length=MAX_ATTRIBUTE_TEXT)]
    | Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
    | Number
    | Flag,
    BeforeValidator(_attribute_value),
]
