"""The ledger is the one writer of state: no code outside `worker/ledger/` sets a state,
moves a chain's head, writes an audit event, or gives birth to a task, a callback or a
delivery. Read from the source, so that a new writer fails the build the day it is written."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from worker.ledger.deliveries import DELIVERY_TRANSITIONS, DeliveryMoveRefused, DeliveryState, move
from worker.ledger.deliveries import DeliveryState as D

WORKER = Path(__file__).resolve().parents[2] / "worker"
LEDGER = WORKER / "ledger"
STATE_COLUMNS = {"state", "audit_seq", "audit_head"}
BORN_IN_THE_LEDGER = {"Task", "Callback", "Delivery", "AuditEvent"}


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr in STATE_COLUMNS:
                found.append((node.lineno, f"sets .{target.attr}"))
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "values":
                named = {k.arg for k in node.keywords} & STATE_COLUMNS
                found += [(node.lineno, f".values({name}=...)") for name in sorted(named)]
            if isinstance(func, ast.Name) and func.id in BORN_IN_THE_LEDGER:
                found.append((node.lineno, f"makes a {func.id}"))
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "__table__"
            and isinstance(node.value, ast.Name)
            and node.value.id == "AuditEvent"
        ):
            found.append((node.lineno, "reaches the audit table"))
    return found


def test_nothing_outside_the_ledger_writes_state() -> None:
    offenders = [
        f"{path.relative_to(WORKER.parent)}:{line}: {what}"
        for path in sorted(WORKER.rglob("*.py"))
        if LEDGER not in path.parents and "migrations" not in path.parts
        and path.name != "models.py"
        for line, what in _writes(ast.parse(path.read_text(encoding="utf-8")))
    ]  # fmt: skip
    assert not offenders, "state written outside worker/ledger/:\n" + "\n".join(offenders)


def test_the_check_sees_each_kind_of_write() -> None:
    source = """
case.state = "closed"
case.audit_head = "x"
session.execute(update(Task).values(state="resolved"))
session.add(Task(id="t"))
connection.execute(insert(AuditEvent.__table__))
"""
    assert [what for _, what in _writes(ast.parse(source))] == [
        "sets .state", "sets .audit_head", ".values(state=...)", "makes a Task",
        "reaches the audit table",
    ]  # fmt: skip


def test_a_delivery_moves_only_as_its_table_allows() -> None:
    finished = {D.delivered, D.dead}
    for state in finished:  # a finished delivery only comes back by a replay
        assert DELIVERY_TRANSITIONS[state] == frozenset({D.pending})
    assert D.delivered not in DELIVERY_TRANSITIONS[D.pending]  # only a sent one is delivered
    assert D.delivered not in DELIVERY_TRANSITIONS[D.queued]

    class Row:
        id, state = "d-1", "delivered"

    with pytest.raises(DeliveryMoveRefused, match="'delivered' and cannot move to 'sending'"):
        move(None, Row(), DeliveryState.sending)  # type: ignore[arg-type]
