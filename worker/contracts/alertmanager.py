"""Prometheus Alertmanager's webhook payload, version 4, as it arrives at
`POST /v1/monitor/alertmanager`; and what closeloop answers for each alert in it.

Fields closeloop does not use are kept in the model for the record, and unknown ones are
ignored rather than refused: Alertmanager adds fields between releases (`truncatedAlerts`
came late), and a monitoring upgrade must not silence the city's alarms. The fields it does
read are typed strictly: a number where a date belongs is a broken sender, not the year 1970.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from worker.contracts.wire import Count, Moment

MAX_ALERTS = 500

Labels = Annotated[dict[str, str], Field(max_length=100)]
Fingerprint = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]


class AlertStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Alert(_Lenient):
    status: AlertStatus
    labels: Labels = Field(description="Identify the alert; `alertname` picks its category.")
    annotations: Labels = Field(default_factory=dict)
    starts_at: Moment = Field(alias="startsAt")
    ends_at: Moment | None = Field(
        default=None, alias="endsAt", description="Year 1 (the zero time) while firing."
    )
    generator_url: str = Field(default="", alias="generatorURL", max_length=2000)
    fingerprint: Fingerprint = Field(
        description="Alertmanager's stable id of the alert: the same on every repeat."
    )


class AlertmanagerWebhook(_Lenient):
    """One notification: a group of alerts that fire or resolve together."""

    model_config = ConfigDict(title="Alertmanager webhook (version 4)")

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", max_length=2000)
    truncated_alerts: Count = Field(default=0, alias="truncatedAlerts")
    status: AlertStatus
    receiver: str = Field(max_length=200)
    group_labels: Labels = Field(default_factory=dict, alias="groupLabels")
    common_labels: Labels = Field(default_factory=dict, alias="commonLabels")
    common_annotations: Labels = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL", max_length=2000)
    alerts: list[Alert] = Field(max_length=MAX_ALERTS)


class Outcome(StrEnum):
    opened = "opened"
    repeat = "repeat"
    resolved = "resolved"
    unknown = "unknown"
    refused = "refused"


class AlertOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: str
    status: AlertStatus
    outcome: Outcome = Field(
        description=(
            "opened: a new case; repeat: the alert's case already exists; resolved: recorded "
            "on its case's timeline; unknown: a resolved alert with no case, ignored; refused: "
            "the alert could not become an incident (see detail; kept as a dead letter)."
        )
    )
    case_id: str | None = None
    detail: str | None = None


class AlertmanagerAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[AlertOutcome]
