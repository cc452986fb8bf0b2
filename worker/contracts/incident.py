"""An incident as filed: by hotline staff, by a producer on the intake queue, or by a monitor."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    UrlConstraints,
    field_validator,
    model_validator,
)

from worker.clock import now
from worker.contracts.enums import Priority
from worker.contracts.wire import AttributeValue, Moment, Number

MAX_DESCRIPTION_CHARS = 4000
MAX_TITLE_CHARS = 200
MAX_ATTACHMENTS = 10
MAX_ATTRIBUTES = 50
MAX_URL_CHARS = 2000
MAX_SHORT_TEXT_CHARS = 500
# How far ahead of the server's clock `occurred_at` may be (clocks drift); more is a mistake,
# most often local time sent with the wrong UTC offset.
OCCURRED_AT_AHEAD = timedelta(hours=1)

Slug = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$"
    ),
]
CategoryCode = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"
    ),
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_SHORT_TEXT_CHARS)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


# Both-or-neither said in the schema too, so that generated clients and validators know it.
_COORDINATES_TOGETHER: dict[str, Any] = {
    "anyOf": [
        {"required": ["latitude", "longitude"], "properties": {
            "latitude": {"type": "number"}, "longitude": {"type": "number"}}},
        {"properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}}},
    ]
}  # fmt: skip


class Location(_Strict):
    """Where it is. Coordinates are WGS 84 degrees; district and grid are the city's own codes."""

    model_config = ConfigDict(json_schema_extra=_COORDINATES_TOGETHER)

    latitude: Number | None = Field(default=None, ge=-90, le=90)
    longitude: Number | None = Field(default=None, ge=-180, le=180)
    address: ShortText | None = None
    district: Slug | None = None
    grid: Slug | None = None

    @model_validator(mode="after")
    def _both_coordinates_or_neither(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give latitude and longitude together, or neither")
        return self


class Reporter(_Strict):
    """The citizen who reported it. Personal data: redacted in logs, shared only as routes say."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    phone: (
        Annotated[
            str,
            StringConstraints(
                strip_whitespace=True, max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$"
            ),
        ]
        | None
    ) = None
    email: EmailStr | None = None


class Incident(_Strict):
    """One report of one problem. The intake contract for HTTP, the queue and monitors alike."""

    source: Slug = Field(
        description="Who filed it: hotline, app, web, monitor, a partner system..."
    )
    external_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = Field(
        default=None, description="The filer's own id; with `source` it makes a repeat harmless."
    )
    category: CategoryCode = Field(
        description="A category code from the routing rules, e.g. `water.pipe_burst`."
    )
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)
    ]
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)] = ""
    location: Location = Field(default_factory=Location)
    reporter: Reporter | None = None
    priority_hint: Priority | None = None
    occurred_at: Moment | None = Field(
        default=None,
        description="When it happened (ISO 8601 with its UTC offset); not in the future.",
    )
    attachments: list[Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_CHARS)]] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS
    )
    attributes: dict[Slug, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="Anything else the filer knows (sensor id, reading...); rules may match on it.",
    )

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > now() + OCCURRED_AT_AHEAD:
            raise ValueError(
                "is in the future (more than an hour ahead of the server's clock): "
                "check its UTC offset"
            )
        return value

    def text(self) -> str:
        """Title and description together: what keyword matchers look at."""
        return f"{self.title}\n{self.description}"


def contains_nul(value: object) -> bool:
    """Whether a parsed JSON value holds a NUL character anywhere, keys included: PostgreSQL
    text cannot store one, so such input is refused at the door."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False
