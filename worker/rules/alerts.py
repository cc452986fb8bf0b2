"""A firing Prometheus alert, as Alertmanager sends it, turned into an incident.

The mapping lives in the rules (`monitoring:`): which alertname is which category, which
labels carry the district, the grid, the coordinates, the address and the severity. The
pipeline adds what only the webhook envelope knows (the alert's fingerprint as external_id,
startsAt as occurred_at).
"""

from __future__ import annotations

import math
import re
from typing import Any

from worker.contracts.enums import Priority
from worker.contracts.incident import MAX_ATTRIBUTES, MAX_SHORT_TEXT_CHARS, MAX_TITLE_CHARS
from worker.rules.compiled import Ruleset
from worker.rules.model import Monitoring

_ATTRIBUTE_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def incident_from_alert(
    ruleset: Ruleset, alert_labels: dict[str, str], annotations: dict[str, str]
) -> dict[str, Any]:
    """The fields of an `Incident` for one alert; validate with `Incident.model_validate`."""
    monitoring = ruleset.monitoring
    if monitoring is None:
        raise LookupError("the rules have no `monitoring` section to map alerts with")
    alertname = alert_labels.get("alertname", "")
    mapping = next((a for a in monitoring.alerts if a.alertname == alertname), None)
    incident: dict[str, Any] = {
        "source": monitoring.source,
        "category": _category(
            ruleset, monitoring, alert_labels, mapping.category if mapping else None
        ),
        "title": _title(alertname, annotations),
        "description": annotations.get("description", ""),
        "location": _location(ruleset, monitoring, alert_labels),
        "attributes": _attributes(alert_labels),
    }
    hint = _severity(monitoring, alert_labels)
    if mapping is not None and mapping.priority_hint is not None:
        hint = mapping.priority_hint
    if hint is not None:
        incident["priority_hint"] = hint.value
    return incident


def _category(
    ruleset: Ruleset, monitoring: Monitoring, labels: dict[str, str], mapped: str | None
) -> str:
    if mapped is not None:
        return mapped
    named = labels.get(monitoring.category_label) if monitoring.category_label else None
    if named in ruleset.categories:
        assert named is not None
        return named
    return monitoring.default_category


def _title(alertname: str, annotations: dict[str, str]) -> str:
    summary = annotations.get("summary", "").strip()
    title = (
        f"{alertname}: {summary}"
        if alertname and summary
        else summary or alertname or "monitoring alert"
    )
    return title[:MAX_TITLE_CHARS]


def _location(ruleset: Ruleset, monitoring: Monitoring, labels: dict[str, str]) -> dict[str, Any]:
    # Only places the city knows: a stray label value must not send a case nowhere.
    location: dict[str, Any] = {**_coordinates(monitoring, labels), **_address(monitoring, labels)}
    district = labels.get(monitoring.district_label)
    grid = labels.get(monitoring.grid_label)
    if grid in ruleset.grids:
        assert grid is not None
        location["grid"] = grid
        district = district or ruleset.grids[grid]
    if district in ruleset.districts:
        assert district is not None
        location["district"] = district
    return location


def _coordinates(monitoring: Monitoring, labels: dict[str, str]) -> dict[str, float]:
    """Latitude and longitude from their labels, both or neither. A value that is not a
    number in range is left out (it stays an attribute): the alert still becomes a case,
    only one that duplicates are not looked for by place."""
    if monitoring.latitude_label is None or monitoring.longitude_label is None:
        return {}
    latitude = _degrees(labels.get(monitoring.latitude_label), 90)
    longitude = _degrees(labels.get(monitoring.longitude_label), 180)
    if latitude is None or longitude is None:
        return {}
    return {"latitude": latitude, "longitude": longitude}


def _degrees(value: str | None, limit: float) -> float | None:
    if value is None:
        return None
    try:
        degrees = float(value.strip())
    except ValueError:
        return None
    return degrees if math.isfinite(degrees) and -limit <= degrees <= limit else None


def _address(monitoring: Monitoring, labels: dict[str, str]) -> dict[str, str]:
    if monitoring.address_label is None:
        return {}
    address = " ".join(labels.get(monitoring.address_label, "").split())
    return {"address": address[:MAX_SHORT_TEXT_CHARS]} if address else {}


def _severity(monitoring: Monitoring, labels: dict[str, str]) -> Priority | None:
    value = labels.get(monitoring.severity_label)
    return monitoring.severity.get(value) if value is not None else None


def _attributes(labels: dict[str, str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, value in sorted(labels.items()):
        slug = key.lower().lstrip("_")
        if _ATTRIBUTE_KEY.match(slug) and len(attributes) < MAX_ATTRIBUTES:
            attributes[slug] = value[:500]
    return attributes
