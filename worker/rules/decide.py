"""The routing decision: a pure function of the ruleset, the incident and the clock.

How routes combine:

- Sibling routes are tried in order; the first that matches wins and the rest are not tried,
  unless the matching route says `continue: true`, in which case the next ones are tried too.
- A route with child routes tries them first; if none matches, the route itself is the
  match. A route without a lead of its own (a group) matches only through a child.
- The first route matched leads: its lead department leads and its assisting departments
  assist; its escalation chain, share_contact and duplicate policy apply. Every further
  route matched (reached through `continue`) adds its lead and assisting departments as
  assisting, and may tighten: the shortest deadlines and the most urgent priority win.
- A route whose lead is excluded (the department returned the task) does not match; an
  excluded assisting department is dropped. `$district` is the government of the
  incident's district; a route led by it does not match an incident without one.
- If no route matched, the catch-all leads, even if it was excluded: someone must own it.

Priority: a route sets `priority: {floor: P}` or `priority: {fixed: P}`. With a floor the
incident's priority hint may raise urgency above P but never lower it below P (no hint: P).
A fixed priority ignores the hint. A route that sets none uses the hint, or normal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from worker.contracts.enums import Priority
from worker.contracts.incident import Incident
from worker.rules.compiled import CompiledRoute, RouteList, Ruleset
from worker.rules.decision import Decision
from worker.rules.matchers import Facts
from worker.rules.model import PrioritySetting


@dataclass(frozen=True)
class Step:
    """One route as explain saw it."""

    path: str
    depth: int
    # matched, no match, lead X excluded, no district government, no child matched, not tried
    outcome: str
    conditions: list[tuple[bool, str]] = field(default_factory=list)
    where: str = ""


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    steps: list[Step]


@dataclass(frozen=True, slots=True)
class _Hit:
    route: CompiledRoute
    lead: str


class _Walk:
    """One traversal of the route tree; `steps` is None when nobody asked why."""

    __slots__ = ("exclude", "facts", "hits", "ruleset", "steps")

    def __init__(
        self, ruleset: Ruleset, facts: Facts, exclude: frozenset[str], explain: bool
    ) -> None:
        self.ruleset = ruleset
        self.facts = facts
        self.exclude = exclude
        self.hits: list[_Hit] = []
        self.steps: list[Step] | None = [] if explain else None

    def routes(self, routes: RouteList) -> bool:
        """Try sibling routes in order; True if any matched."""
        # Explain looks at every route; deciding looks only at those the category lets through.
        candidates = (
            routes.routes if self.steps is not None else routes.candidates(self.facts.category)
        )
        matched = False
        for position, route in enumerate(candidates):
            if self.route(route):
                matched = True
                if not route.continue_:
                    self._not_tried(candidates[position + 1 :])
                    break
        return matched

    def route(self, route: CompiledRoute) -> bool:
        if not route.matches(self.facts):
            self._note(route, "no match")
            return False
        entry = len(self.steps) if self.steps is not None else 0
        self._note(route, "matched")
        if route.children is not None and self.routes(route.children):
            return True
        written = route.settings.lead
        lead = self.ruleset.resolve(written, self.facts.district) if written else None
        if lead is None or lead in self.exclude:
            self._restate(entry, _why_not(written, lead))
            return False
        self.hits.append(_Hit(route, lead))
        return True

    def _note(self, route: CompiledRoute, outcome: str) -> None:
        if self.steps is not None:
            conditions = [(m.test(self.facts), m.explain(self.facts)) for m in route.matchers]
            self.steps.append(Step(route.path, route.depth, outcome, conditions, route.where))

    def _restate(self, entry: int, outcome: str) -> None:
        if self.steps is not None:
            step = self.steps[entry]
            self.steps[entry] = Step(step.path, step.depth, outcome, step.conditions, step.where)

    def _not_tried(self, routes: Iterable[CompiledRoute]) -> None:
        if self.steps is None:
            return
        for route in routes:
            self.steps.append(Step(route.path, route.depth, "not tried", [], route.where))


def _why_not(written: str | None, lead: str | None) -> str:
    if written is None:
        return "no child matched"
    if lead is None:
        return "no district government"
    return f"lead {lead} excluded"


def decide(
    ruleset: Ruleset, incident: Incident, now: datetime, *, exclude: frozenset[str] = frozenset()
) -> Decision:
    """Route one incident at time `now` (timezone-aware). Pure: same input, same decision."""
    return _run(ruleset, incident, now, exclude, explain=False)[0]


def explain(
    ruleset: Ruleset, incident: Incident, now: datetime, *, exclude: frozenset[str] = frozenset()
) -> Explanation:
    """The decision, and every route tried in order with the conditions that held or failed."""
    decision, steps = _run(ruleset, incident, now, exclude, explain=True)
    return Explanation(decision, steps or [])


def _run(
    ruleset: Ruleset, incident: Incident, now: datetime, exclude: frozenset[str], *, explain: bool
) -> tuple[Decision, list[Step] | None]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    facts = Facts(incident, now)
    walk = _Walk(ruleset, facts, exclude, explain)
    walk.routes(ruleset.routes)
    hits = walk.hits
    if not hits:
        catch_all = ruleset.catch_all
        assert catch_all.settings.lead is not None
        hits = [_Hit(catch_all, catch_all.settings.lead)]
        if walk.steps is not None:
            walk.steps.append(Step(catch_all.path, 0, "matched", [], catch_all.where))
    return _decision(ruleset, facts, hits, exclude), walk.steps


def _decision(
    ruleset: Ruleset, facts: Facts, hits: list[_Hit], exclude: frozenset[str]
) -> Decision:
    first = hits[0].route.settings
    lead = hits[0].lead
    acknowledge = min(_known(h.route.settings.acknowledge_within) for h in hits)
    resolve = min(_known(h.route.settings.resolve_within) for h in hits)
    priority = min(
        (_priority(h.route.settings.priority, facts.hint) for h in hits), key=lambda p: p.rank
    )
    duplicates = first.duplicates
    if duplicates is None and facts.category in ruleset.categories:
        duplicates = ruleset.categories[facts.category].duplicates
    return Decision(
        lead=lead,
        assisting=_assisting(ruleset, facts, hits, lead, exclude),
        priority=priority,
        acknowledge_within=acknowledge,
        resolve_within=resolve,
        acknowledge_due_at=facts.now + acknowledge,
        resolve_due_at=facts.now + resolve,
        escalation=list(first.escalation),
        share_contact=first.share_contact,
        duplicate_policy=duplicates,
        route_path=[h.route.path for h in hits],
        ruleset_version=ruleset.version,
    )


def _assisting(
    ruleset: Ruleset, facts: Facts, hits: list[_Hit], lead: str, exclude: frozenset[str]
) -> list[str]:
    wanted = list(hits[0].route.settings.assisting)
    for hit in hits[1:]:
        wanted.append(hit.lead)
        wanted.extend(hit.route.settings.assisting)
    result: list[str] = []
    for written in wanted:
        department = ruleset.resolve(written, facts.district)
        if (
            department
            and department != lead
            and department not in exclude
            and department not in result
        ):
            result.append(department)
    return result


def _priority(setting: PrioritySetting | None, hint: Priority | None) -> Priority:
    if setting is None:
        return hint or Priority.normal
    if setting.fixed is not None:
        return setting.fixed
    floor = setting.floor
    assert floor is not None
    if hint is not None and hint.rank < floor.rank:
        return hint
    return floor


def _known(value: timedelta | None) -> timedelta:
    # The loader refuses a route that can lead without both deadlines.
    assert value is not None
    return value
