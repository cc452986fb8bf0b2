"""A small city's two days, written straight into the store, for the metrics tests.

Times are hours from `start` (a local midnight in Asia/Shanghai in the metrics tests); the
window under test is [start, start + 48 h). Two departments lead: water (district gulou,
but W10 in xuanwu) and gas (district xuanwu). Each case's comment says what it is there to
test; tests/metrics/test_report.py works the figures out by hand from this list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from worker.db.models import Callback, Case, Task
from worker.db.session import transaction

WINDOW_HOURS = 48


@dataclass
class LeadTask:
    department: str
    created: float
    ack_due: float | None
    acked: float | None = None
    state: str = "accepted"
    round: int = 1


@dataclass
class Answer:
    at: float
    solved: bool | None
    satisfied: bool | None


@dataclass
class Spec:
    name: str
    state: str
    received: float
    lead: str | None = None
    category: str = "water.pipe_burst"
    district: str = "gulou"
    ack_due: float | None = None
    resolve_due: float | None = None
    resolved: float | None = None
    closed: float | None = None
    merged_into: str | None = None
    reopens: int = 0
    tasks: list[LeadTask] = field(default_factory=list)
    callbacks: list[Answer] = field(default_factory=list)


def _water(name: str, state: str, received: float, **more: object) -> Spec:
    return Spec(name, state, received, lead="water", **more)  # type: ignore[arg-type]


def _gas(name: str, state: str, received: float, **more: object) -> Spec:
    return Spec(
        name,
        state,
        received,
        category="gas.leak",
        district="xuanwu",
        **more,  # type: ignore[arg-type]
    )


def _t(
    dept: str, created: float, due: float | None, acked: float | None, **more: object
) -> LeadTask:
    return LeadTask(dept, created, due, acked, **more)  # type: ignore[arg-type]


CASES = [
    # closed on time, acknowledged in time; its callback: solved and satisfied
    _water("W1", "closed", 1, resolve_due=25, resolved=10, closed=12,
           tasks=[_t("water", 1, 2, 1.5, state="resolved")],
           callbacks=[Answer(12, True, True)]),
    # closed late (resolved h20, due h10), acknowledged late (h4, due h3)
    _water("W2", "closed", 2, resolve_due=10, resolved=20, closed=22,
           tasks=[_t("water", 2, 3, 4, state="resolved")],
           callbacks=[Answer(22, True, False)]),
    # closed at h7, reopened at h8, closed again at h28: one closed case, 25 h to close,
    # judged on time by its last round (resolved h26, due h30); two rounds of lead tasks
    _water("W3", "closed", 3, resolve_due=30, resolved=26, closed=28, reopens=1,
           tasks=[_t("water", 3, 4, 3.5, state="resolved"),
                  _t("water", 8, 9, 10, state="resolved", round=2)],
           callbacks=[Answer(6.5, True, True), Answer(27, True, False)]),
    # closed at h7, reopened at h9, still waiting for acknowledgement (due h10): not closed,
    # in the backlog and overdue; its old resolved and closed times are left on the row
    _water("W4", "dispatched", 4, ack_due=10, resolve_due=60, resolved=6, closed=7, reopens=1,
           tasks=[_t("water", 4, 5, 4.5, state="resolved"),
                  _t("water", 9, 10, None, state="assigned", round=2)],
           callbacks=[Answer(6.5, None, None)]),
    # in progress past its resolve deadline (h20): overdue
    _water("W5", "in_progress", 5, resolve_due=20, tasks=[_t("water", 5, 6, 5.5)]),
    # accepted, deadlines ahead: backlog, not overdue
    _water("W6", "accepted", 30, resolve_due=80, tasks=[_t("water", 30, 31, 30.5)]),
    # cancelled after dispatch: received, not in the closure rate; its task was dispatched
    _water("W7", "cancelled", 6, tasks=[_t("water", 6, 7, None, state="cancelled")]),
    # a duplicate folded into W1: counted apart as merged, for W1's lead department
    Spec("W8", "merged", 2, merged_into="W1"),
    # filed before the window (closed inside it): in no figure; its callback neither
    _water("W9", "closed", -10, resolve_due=0, resolved=-2, closed=1,
           tasks=[_t("water", -10, -9, -9.5, state="resolved")],
           callbacks=[Answer(2, True, True)]),
    # filed before the window, never acknowledged (due h-19): in the backlog, overdue
    _water("W10", "dispatched", -20, district="xuanwu", ack_due=-19, resolve_due=-10,
           tasks=[_t("water", -20, -19, None, state="assigned")]),
    # resolved (h50) and closed (h51) after the window's end: open at the end, and overdue
    # (resolve due h45); its callback comes after the end too
    _water("W11", "closed", 40, resolve_due=45, resolved=50, closed=51,
           tasks=[_t("water", 40.5, 42, 41, state="resolved")],
           callbacks=[Answer(52, True, True)]),
    # dispatched just before the end, acknowledge deadline after it: backlog, not overdue
    _water("W12", "dispatched", 47, ack_due=49, resolve_due=90,
           tasks=[_t("water", 47.5, 49, None, state="assigned")]),
    # resolved, waiting for the callback: not closed, not in the backlog
    _water("W13", "resolved", 7, resolve_due=30, resolved=20,
           tasks=[_t("water", 7, 8, 7.5, state="resolved")]),
    # filed exactly at the window's end: outside it (the window is half-open)
    Spec("W14", "received", WINDOW_HOURS),
    # closed on time; the citizen says solved and declines to rate
    _gas("G1", "closed", 10, lead="gas", resolve_due=14, resolved=12, closed=13,
         tasks=[_t("gas", 10, 10.5, 10.2, state="resolved")],
         callbacks=[Answer(13, True, None)]),
    # acknowledged late (h15, due h13), closed on time, no callback
    _gas("G2", "closed", 12, lead="gas", resolve_due=36, resolved=16, closed=17,
         tasks=[_t("gas", 12, 13, 15, state="resolved")]),
    # triaged, not routed yet: the "no department" group, open, no deadline
    _gas("G3", "triaged", 13),
    # cancelled before routing
    _gas("G4", "cancelled", 14),
    # returned by water (wrongly routed), then led by gas: water's task counts for water
    _gas("G5", "accepted", 15, lead="gas", resolve_due=70,
         tasks=[_t("water", 15, 16, None, state="returned"),
                _t("gas", 17, 18, 17.5, round=2)]),
    # on the second day: closed on time; first callback unanswered, second unhappy
    _gas("G6", "closed", 26, lead="gas", resolve_due=30, resolved=28, closed=30,
         tasks=[_t("gas", 26, 27, 26.5, state="resolved")],
         callbacks=[Answer(30, None, None), Answer(31, False, False)]),
]  # fmt: skip


def seed(engine: Engine, start: datetime) -> dict[str, str]:
    """Write `CASES` with hour 0 at `start`; returns each case's name → id."""

    def at(hours: float | None) -> datetime | None:
        return None if hours is None else start + timedelta(hours=hours)

    ids: dict[str, str] = {}
    with transaction(engine) as session:
        for spec in CASES:
            case = Case(
                state=spec.state, source="hotline", category=spec.category,
                title=f"{spec.name} 测试", district=spec.district, lead_department=spec.lead,
                received_at=at(spec.received), acknowledge_due_at=at(spec.ack_due),
                resolve_due_at=at(spec.resolve_due), resolved_at=at(spec.resolved),
                closed_at=at(spec.closed), reopen_count=spec.reopens,
                merged_into_id=ids.get(spec.merged_into or ""),
                dispatch_round=max((t.round for t in spec.tasks), default=0),
            )  # fmt: skip
            session.add(case)
            session.flush()
            ids[spec.name] = case.id
            for task in spec.tasks:
                row = Task(
                    case_id=case.id, department=task.department, role="lead",
                    state=task.state, dispatch_round=task.round,
                    acknowledge_due_at=at(task.ack_due), acknowledged_at=at(task.acked),
                    created_at=at(task.created),
                )  # fmt: skip
                session.add(row)
            for answer in spec.callbacks:
                callback = Callback(
                    case_id=case.id, solved=answer.solved, satisfied=answer.satisfied,
                    outcome=_outcome(answer), recorded_by="hotline-test",
                    recorded_at=at(answer.at),
                )  # fmt: skip
                session.add(callback)
    return ids


def _outcome(answer: Answer) -> str:
    if answer.solved is None and answer.satisfied is None:
        return "no_answer"
    return "satisfied" if answer.satisfied else "unsatisfied"
