"""Monitoring alerts into cases: a firing alert is an incident, filed through intake; a
resolved one is a note on its case's timeline.

An alert is known by its fingerprint, which Alertmanager keeps the same on every repeat
notification, so the case's external id is `alertmanager:<fingerprint>` and a repeat finds
that case instead of opening another. The same alert firing again *after its case is over*
(a new `startsAt`) is a new occurrence of the problem and must not be swallowed by the old,
closed case: it opens a case of its own, keyed `alertmanager:<fingerprint>@<startsAt>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from worker.contracts.alertmanager import Alert, Outcome
from worker.contracts.audit import Actor
from worker.contracts.incident import Incident
from worker.db.models import AuditEvent, Case
from worker.ledger.lifecycle import OPEN_CASE_STATES, record
from worker.rules import Ruleset, incident_from_alert
from worker.stages.intake import accept_incident

KEY_PREFIX = "alertmanager:"
RESOLVED = "alert.resolved"
DEFAULT_SOURCE = "monitor"


@dataclass(frozen=True)
class Handled:
    outcome: Outcome
    case: Case | None = None


def alert_key(fingerprint: str) -> str:
    return KEY_PREFIX + fingerprint


def alert_source(ruleset: Ruleset) -> str:
    return ruleset.monitoring.source if ruleset.monitoring else DEFAULT_SOURCE


def latest_case(session: Session, source: str, fingerprint: str) -> Case | None:
    """The newest case any occurrence of this alert opened."""
    key = alert_key(fingerprint)
    return session.scalar(
        select(Case)
        .where(
            Case.source == source,
            or_(Case.external_id == key, Case.external_id.startswith(f"{key}@", autoescape=True)),
        )
        .order_by(Case.received_at.desc())
        .limit(1)
    )


def file_firing(session: Session, ruleset: Ruleset, alert: Alert, *, actor: Actor) -> Handled:
    """Open the alert's case, or find it. Raises LookupError or ValidationError when the
    alert cannot be mapped into a valid incident."""
    fields = incident_from_alert(ruleset, alert.labels, alert.annotations)
    latest = latest_case(session, fields["source"], alert.fingerprint)
    if latest is not None and _same_occurrence(latest, alert):
        return Handled(Outcome.repeat, latest)
    key = alert_key(alert.fingerprint)
    if latest is not None:
        key = f"{key}@{_utc(alert.starts_at)}"
    incident = Incident.model_validate(
        {**fields, "external_id": key, "occurred_at": alert.starts_at}
    )
    accepted = accept_incident(session, incident, actor=actor)
    return Handled(Outcome.opened if accepted.created else Outcome.repeat, accepted.case)


def _same_occurrence(case: Case, alert: Alert) -> bool:
    # An open case takes every notification of its alert, flapping included.
    return case.state in OPEN_CASE_STATES or case.occurred_at == alert.starts_at


def record_resolved(session: Session, ruleset: Ruleset, alert: Alert, *, actor: Actor) -> Handled:
    """Note on the alert's case that it resolved (once per occurrence); no state changes."""
    case = latest_case(session, alert_source(ruleset), alert.fingerprint)
    if case is None:
        return Handled(Outcome.unknown)
    starts_at = _utc(alert.starts_at)
    if starts_at not in _resolutions_recorded(session, case.id):
        record(
            session,
            case,
            actor=actor,
            action=RESOLVED,
            data={
                "fingerprint": alert.fingerprint,
                "alertname": alert.labels.get("alertname", ""),
                "starts_at": starts_at,
                "ends_at": _utc(alert.ends_at) if alert.ends_at else None,
            },
        )
    return Handled(Outcome.resolved, case)


def _resolutions_recorded(session: Session, case_id: str) -> set[str]:
    data = session.scalars(
        select(AuditEvent.data).where(AuditEvent.case_id == case_id, AuditEvent.action == RESOLVED)
    )
    return {str(item.get("starts_at")) for item in data}


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
