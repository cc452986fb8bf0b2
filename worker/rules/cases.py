"""Expectation cases: incidents with the decision a rule author expects, checked in batch.

```yaml
at: "2025-01-15T10:00:00+08:00"      # the clock for every case that gives none
cases:
  - name: gas leak
    at: "2025-01-15T23:30:00+08:00"    # optional
    exclude: [gas]                     # optional: departments that returned the task
    incident: {source: hotline, category: gas.leak, title: 闻到煤气味}
    expect:                            # only what is written here is compared
      lead: gas
      assisting: [fire]                # compared as a set
      priority: critical
      acknowledge_within: 15m
      resolve_within: 2h
      route_path: [life-safety/gas-leak]
      share_contact: true
      escalation: [ops-centre, emergency, supervision]   # who is notified, level 1 first
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from worker.contracts.enums import Priority
from worker.contracts.incident import Incident
from worker.rules import yamlsrc
from worker.rules.compiled import Ruleset
from worker.rules.decide import decide
from worker.rules.decision import Decision
from worker.rules.durations import format_duration
from worker.rules.loader import RuleError, RulesLoadError
from worker.rules.model import Duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    lead: str | None = None
    assisting: list[str] | None = None
    priority: Priority | None = None
    acknowledge_within: Duration | None = None
    resolve_within: Duration | None = None
    route_path: list[str] | None = None
    share_contact: bool | None = None
    escalation: list[str] | None = None


class Case(_Strict):
    name: str
    at: AwareDatetime | None = None
    exclude: list[str] = Field(default_factory=list)
    incident: Incident
    expect: Expect


class CasesFile(_Strict):
    at: AwareDatetime | None = None
    cases: list[Case] = Field(min_length=1)


@dataclass(frozen=True)
class Miss:
    case: str
    where: str
    differences: list[tuple[str, str, str]]  # what, expected, got

    def __str__(self) -> str:
        lines = [f"MISS {self.case} ({self.where})"]
        for what, expected, got in self.differences:
            lines.append(f"  {what}:")
            lines.append(f"    - expected: {expected}")
            lines.append(f"    + got:      {got}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Outcome:
    total: int
    misses: list[Miss]


def load_cases(path: Path) -> tuple[CasesFile, yamlsrc.Document]:
    """Parse a cases file; errors come as RulesLoadError with file, line and column."""
    try:
        document = yamlsrc.parse(path.read_text(encoding="utf-8"))
    except yamlsrc.YamlProblem as exc:
        raise RulesLoadError(
            [RuleError(str(path), exc.position.line, exc.position.column, exc.message)]
        ) from exc
    try:
        return CasesFile.model_validate(document.data), document
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            where = document.position(tuple(error["loc"]), key=error["type"] == "extra_forbidden")
            loc = ".".join(str(step) for step in error["loc"])
            errors.append(RuleError(str(path), where.line, where.column, f"{loc}: {error['msg']}"))
        raise RulesLoadError(errors) from exc


def run_cases(ruleset: Ruleset, path: Path, *, default_at: datetime | None = None) -> Outcome:
    cases, document = load_cases(path)
    misses = []
    for index, case in enumerate(cases.cases):
        now = case.at or cases.at or default_at
        if now is None:
            raise RulesLoadError(
                [RuleError(str(path), 1, 1, "give `at:` for the file or for each case")]
            )
        decision = decide(ruleset, case.incident, now, exclude=frozenset(case.exclude))
        differences = compare(case.expect, decision)
        if differences:
            line = document.position(("cases", index)).line
            misses.append(Miss(case.name, f"{path}:{line}", differences))
    return Outcome(len(cases.cases), misses)


def compare(expect: Expect, decision: Decision) -> list[tuple[str, str, str]]:
    """Every expectation the decision does not meet, as (what, expected, got)."""
    got: dict[str, Any] = {
        "lead": decision.lead,
        "assisting": sorted(decision.assisting),
        "priority": decision.priority.value,
        "acknowledge_within": format_duration(decision.acknowledge_within),
        "resolve_within": format_duration(decision.resolve_within),
        "route_path": decision.route_path,
        "share_contact": decision.share_contact,
        "escalation": [step.notify for step in decision.escalation],
    }
    differences = []
    for what, wanted in expect.model_dump(exclude_none=True).items():
        expected = _shown(what, wanted)
        if expected != got[what]:
            differences.append((what, str(expected), str(got[what])))
    return differences


def _shown(what: str, value: Any) -> Any:
    if what == "assisting":
        return sorted(value)
    if what in ("acknowledge_within", "resolve_within"):
        return format_duration(value)
    if what == "priority":
        return Priority(value).value
    return value
