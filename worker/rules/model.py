"""The routing rules language: what a rule author writes in `routing_rules/*.yaml`.

Every file holds any of the sections of `RulesFile`; the loader merges the files of a folder
and checks every reference between them. These models check the shape of one file; the
cross-file checks (unknown department, duplicate ids, a missing catch-all) live in `loader.py`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from worker.contracts.enums import Priority
from worker.rules import durations
from worker.urls import has_credentials

DISTRICT_LEAD = "$district"
"""In `lead` or `assisting`: the government of the incident's own district."""

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$"),
    Field(description="Lower-case letters, digits, `-` and `_`, e.g. `water`, `gulou-03`."),
]
CategoryCode = Annotated[
    str,
    StringConstraints(min_length=3, max_length=100, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"),
    Field(description="`group.name`, e.g. `water.pipe_burst`."),
]
CategoryPattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$"),
    Field(description="A category code, or `group.*` for every category of a group."),
]
DepartmentRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^(\$district|[a-z0-9][a-z0-9_-]*)$"),
    Field(description="A department id, or `$district` for the incident's district government."),
]
AttributeValue = str | int | float | bool


def _one_or_many(value: object) -> object:
    # Authors write `district: gulou` as often as `district: [gulou, jiangbei]`.
    return [value] if isinstance(value, str | int | float | bool) else value


def _duration(value: object) -> object:
    if isinstance(value, str):
        return durations.parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError(f"bad duration {value!r}: {durations.HINT}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    WithJsonSchema(
        {"type": "string", "pattern": durations.PATTERN, "examples": ["30m", "2h", "7d"]}
    ),
]


def _one_or_many_schema(item: Any) -> WithJsonSchema:
    single = TypeAdapter[Any](item).json_schema()
    return WithJsonSchema({"anyOf": [single, {"type": "array", "items": single}]})


_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def _check_url(value: str) -> str:
    _HTTP_URL.validate_python(value)
    if has_credentials(value):
        # Whatever is in the URL ends up shown somewhere (an operator's screen, a log line).
        raise ValueError(
            "a webhook URL must not carry a user name or password (user:password@): remove "
            "them; departments check the webhook-signature header to know a webhook is ours"
        )
    return value


def _check_secret_env(value: str) -> str:
    if value.startswith("whsec_"):
        raise ValueError(
            "this looks like a secret itself; put the secret in an environment variable "
            "and write that variable's name here, e.g. CLOSELOOP_SECRET_WATER"
        )
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
        raise ValueError(
            f"{value!r} is not an environment variable name; use capitals, digits and _, "
            "e.g. CLOSELOOP_SECRET_WATER"
        )
    return value


def _check_clock(value: str) -> str:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if (
        not match
        or int(match[1]) > 24
        or int(match[2]) > 59
        or (int(match[1]) == 24 and match[2] != "00")
    ):
        raise ValueError(
            f"bad time of day {value!r}: write HH:MM between 00:00 and 24:00, in quotes"
        )
    return value


def clock_minutes(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


Url = Annotated[
    str, AfterValidator(_check_url), Field(examples=["http://127.0.0.1:9900/hooks/water"])
]
SecretEnv = Annotated[str, AfterValidator(_check_secret_env)]
Clock = Annotated[str, AfterValidator(_check_clock), Field(examples=["22:00", "06:00"])]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


Keyword = Annotated[str, StringConstraints(min_length=1)]
Ids = Annotated[list[Id], BeforeValidator(_one_or_many), _one_or_many_schema(Id)]
CategoryPatterns = Annotated[
    list[CategoryPattern], BeforeValidator(_one_or_many), _one_or_many_schema(CategoryPattern)
]
DepartmentRefs = Annotated[
    list[DepartmentRef], BeforeValidator(_one_or_many), _one_or_many_schema(DepartmentRef)
]
Priorities = Annotated[list[Priority], BeforeValidator(_one_or_many), _one_or_many_schema(Priority)]
Keywords = Annotated[list[Keyword], BeforeValidator(_one_or_many), _one_or_many_schema(Keyword)]
AttributeValues = Annotated[
    list[AttributeValue], BeforeValidator(_one_or_many), _one_or_many_schema(AttributeValue)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class Names(_Strict):
    """Display names: Chinese for the hotline staff and citizens, English for everyone else."""

    zh: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    en: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class Department(_Strict):
    """Who can be given a task. The secret is never written here, only the variable holding it."""

    id: Id
    name: Names
    url: Url = Field(description="Webhook endpoint that receives the department's tasks.")
    secret_env: SecretEnv = Field(
        description="Name of the environment variable holding the `whsec_...` signing secret(s)."
    )
    escalates_to: Id | None = Field(
        default=None, description="Whom to tell when it misses a deadline."
    )


class DuplicatePolicy(_Strict):
    """Reports within `radius_m` metres and `window` of an open case are folded into it."""

    radius_m: Annotated[float, Field(gt=0, le=100_000)]
    window: Duration


class Category(_Strict):
    code: CategoryCode
    name: Names
    duplicates: DuplicatePolicy | None = None


class CategoryGroup(_Strict):
    group: Id
    name: Names
    categories: list[Category] = Field(min_length=1)


class Grid(_Strict):
    id: Id
    name: Names | None = None


class District(_Strict):
    id: Id
    name: Names
    government: Id | None = Field(
        default=None, description="Department that is this district's government."
    )
    grids: list[Grid] = Field(default_factory=list)


Position = Annotated[list[float], Field(min_length=2, max_length=3)]
Ring = list[Position]


class Polygon(_Strict):
    """GeoJSON Polygon: the outer ring, then any holes; positions are [longitude, latitude]."""

    type: Literal["Polygon"]
    coordinates: list[Ring] = Field(min_length=1)


class MultiPolygon(_Strict):
    type: Literal["MultiPolygon"]
    coordinates: list[list[Ring]] = Field(min_length=1)


class Area(_Strict):
    id: Id
    name: Names
    geometry: Annotated[Polygon | MultiPolygon, Field(discriminator="type")]


class TimeWindow(_Strict):
    """A daily window in a time zone; `start` after `end` means it crosses midnight.

    `weekdays` name the day on which the window opens: a Friday night 22:00-06:00 window
    still holds at 03:00 on Saturday.
    """

    id: Id
    name: Names | None = None
    timezone: str = Field(examples=["Asia/Shanghai"])
    start: Clock
    end: Clock
    weekdays: list[Weekday] | None = None


class Match(_Strict):
    """Every condition given must hold; a list means any of its items."""

    model_config = ConfigDict(
        json_schema_extra={"patternProperties": {"^attributes\\.[a-z0-9][a-z0-9_.-]*$": {}}}
    )

    category: CategoryPatterns | None = None
    district: Ids | None = None
    grid: Ids | None = None
    area: Ids | None = None
    priority: Priorities | None = Field(default=None, description="The incident's priority hint.")
    source: Ids | None = None
    keywords: Keywords | None = Field(
        default=None, description="Any of these appears in title or description (case-insensitive)."
    )
    window: Ids | None = Field(default=None, description="Now is inside any of these time windows.")
    attributes: dict[str, AttributeValues] | None = None
    not_: Match | None = Field(
        default=None, alias="not", description="Holds when these conditions do not all hold."
    )

    @model_validator(mode="before")
    @classmethod
    def _dotted_attributes(cls, data: Any) -> Any:
        # `attributes.sensor_type: pressure` reads better than a nested mapping in one-liners.
        if not isinstance(data, dict) or not any(str(k).startswith("attributes.") for k in data):
            return data
        folded = dict(data)
        nested = dict(folded.pop("attributes", None) or {})
        for key in [k for k in folded if str(k).startswith("attributes.")]:
            nested[str(key).removeprefix("attributes.")] = folded.pop(key)
        folded["attributes"] = nested
        return folded


class PrioritySetting(_Strict):
    """`floor`: at least this urgent, a more urgent hint wins. `fixed`: this, whatever the hint."""

    floor: Priority | None = None
    fixed: Priority | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.floor is None) == (self.fixed is None):
            raise ValueError(
                "set exactly one of `floor` or `fixed`, e.g. `priority: {floor: high}`"
            )
        return self


class EscalationStep(_Strict):
    after: Literal["acknowledge", "resolve"] = Field(
        description="Which deadline, when missed, starts the clock."
    )
    delay: Duration = Field(default=timedelta(0), description="How long past that deadline.")
    notify: Id


class Settings(_Strict):
    """What a route decides; a child route inherits each one its parent set, unless it sets it."""

    lead: DepartmentRef | None = None
    assisting: DepartmentRefs | None = None
    priority: PrioritySetting | None = None
    acknowledge_within: Duration | None = None
    resolve_within: Duration | None = None
    escalation: list[EscalationStep] | None = None
    share_contact: bool | None = Field(
        default=None, description="Give the lead the citizen's contact details."
    )
    duplicates: DuplicatePolicy | None = None


class Route(Settings):
    id: Id
    description: str | None = None
    match: Match | None = None
    continue_: bool = Field(
        default=False,
        alias="continue",
        description="After a match, keep trying the next routes; their departments assist.",
    )
    routes: list[Route] | None = None


class AlertMapping(_Strict):
    alertname: Annotated[str, StringConstraints(min_length=1)]
    category: CategoryCode
    priority_hint: Priority | None = None


class Monitoring(_Strict):
    """How a firing Prometheus alert becomes an incident."""

    source: Id = "monitor"
    default_category: CategoryCode
    category_label: str | None = Field(
        default="category", description="A label naming the category directly."
    )
    district_label: str = "district"
    grid_label: str = "grid"
    latitude_label: str | None = Field(
        default="latitude",
        description="A label holding the place's latitude (WGS 84 degrees); with "
        "`longitude_label`, it lets duplicate policies fold repeated alerts from one place. "
        "null: alerts carry no coordinates.",
    )
    longitude_label: str | None = Field(
        default="longitude", description="A label holding the place's longitude (WGS 84 degrees)."
    )
    address_label: str | None = Field(
        default="address",
        description="A label holding the place's address (without coordinates, duplicates are "
        "the very same address). null: alerts carry no address.",
    )
    severity_label: str = "severity"
    severity: dict[str, Priority] = Field(
        default_factory=dict, description="Severity label value -> priority hint."
    )
    alerts: list[AlertMapping] = Field(default_factory=list)

    @model_validator(mode="after")
    def _both_coordinate_labels_or_neither(self) -> Self:
        if (self.latitude_label is None) != (self.longitude_label is None):
            raise ValueError(
                "give latitude_label and longitude_label together, or set both to null"
            )
        return self

    @property
    def maps_a_place(self) -> bool:
        """Whether an alert can carry coordinates or an address, which duplicates need."""
        return self.latitude_label is not None or self.address_label is not None


class RulesFile(_Strict):
    """One file of a rules folder. Each section is optional; the folder must be complete."""

    model_config = ConfigDict(title="closeloop routing rules file")

    departments: list[Department] | None = None
    categories: list[CategoryGroup] | None = None
    districts: list[District] | None = None
    areas: list[Area] | None = None
    windows: list[TimeWindow] | None = None
    defaults: Settings | None = Field(
        default=None, description="Settings every top-level route inherits."
    )
    routes: list[Route] | None = Field(
        default=None, description="Tried in order (files by name); first match wins."
    )
    catch_all: Settings | None = Field(
        default=None,
        description="Leads everything no route took: the operations centre. Mandatory.",
    )
    monitoring: Monitoring | None = None


ALL_KEYS: frozenset[str] = frozenset(
    (field.alias or name)
    for model in (
        RulesFile,
        Department,
        Names,
        DuplicatePolicy,
        Category,
        CategoryGroup,
        Grid,
        District,
        Polygon,
        Area,
        TimeWindow,
        Match,
        PrioritySetting,
        EscalationStep,
        Route,
        AlertMapping,
        Monitoring,
    )
    for name, field in model.model_fields.items()
)
"""Every key of the language, for `did you mean` on an unknown key."""
