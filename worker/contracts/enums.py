"""The small vocabularies shared by the store, the API and the rules."""

from enum import StrEnum


class CaseState(StrEnum):
    received = "received"
    triaged = "triaged"
    merged = "merged"
    cancelled = "cancelled"
    dispatched = "dispatched"
    accepted = "accepted"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"


class TaskState(StrEnum):
    assigned = "assigned"
    accepted = "accepted"
    in_progress = "in_progress"
    resolved = "resolved"
    returned = "returned"
    released = "released"
    cancelled = "cancelled"


class TaskRole(StrEnum):
    lead = "lead"
    assisting = "assisting"


class Priority(StrEnum):
    """Ordered from most to least urgent; `rank` gives the order."""

    critical = "critical"
    high = "high"
    normal = "normal"
    low = "low"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.critical: 0, Priority.high: 1, Priority.normal: 2, Priority.low: 3}


class ActorKind(StrEnum):
    system = "system"
    hotline = "hotline"
    monitor = "monitor"
    department = "department"
    supervisor = "supervisor"
    admin = "admin"
    citizen = "citizen"
