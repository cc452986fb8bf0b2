"""The ruleset in its compiled form: immutable, references resolved, routes indexed by category.

Inheritance is resolved here once, so deciding never walks up to a parent. Each list of
sibling routes keeps, for every category code of the taxonomy, the routes that could match
it at all; a route restricted to other categories costs nothing for this incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict

from worker.rules.decision import EscalationStep
from worker.rules.matchers import Facts, Matcher
from worker.rules.model import (
    DISTRICT_LEAD,
    Department,
    DuplicatePolicy,
    Monitoring,
    Names,
    PrioritySetting,
)


class CategoryInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    name: Names
    group: str
    group_name: Names
    duplicates: DuplicatePolicy | None = None


@dataclass(frozen=True, slots=True)
class Effective:
    """A route's settings after inheritance."""

    lead: str | None = None
    assisting: tuple[str, ...] = ()
    priority: PrioritySetting | None = None
    acknowledge_within: timedelta | None = None
    resolve_within: timedelta | None = None
    escalation: tuple[EscalationStep, ...] = ()
    share_contact: bool = False
    duplicates: DuplicatePolicy | None = None


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    id: str
    path: str
    depth: int
    matchers: tuple[Matcher, ...]
    settings: Effective
    continue_: bool
    children: RouteList | None
    categories: frozenset[str] | None  # codes this route can match; None: any
    where: str  # file:line, for explain and tree

    def matches(self, facts: Facts) -> bool:
        return all(matcher.test(facts) for matcher in self.matchers)


class RouteList:
    """Sibling routes in order, with the category index."""

    __slots__ = ("_by_category", "routes")

    def __init__(self, routes: Iterable[CompiledRoute], category_codes: Iterable[str]) -> None:
        self.routes = tuple(routes)
        self._by_category = {
            code: tuple(r for r in self.routes if r.categories is None or code in r.categories)
            for code in category_codes
        }

    def candidates(self, category: str) -> tuple[CompiledRoute, ...]:
        # An unknown code falls back to every route: the matchers still decide correctly.
        return self._by_category.get(category, self.routes)


def walk(routes: RouteList) -> Iterable[CompiledRoute]:
    for route in routes.routes:
        yield route
        if route.children is not None:
            yield from walk(route.children)


class Ruleset:
    """The rules in force: immutable once built; swap a new one in to change routing."""

    def __init__(
        self,
        *,
        version: str,
        source: str,
        departments: Mapping[str, Department],
        categories: Mapping[str, CategoryInfo],
        groups: Mapping[str, Names],
        districts: Mapping[str, Names],
        governments: Mapping[str, str],
        grids: Mapping[str, str],
        routes: RouteList,
        catch_all: CompiledRoute,
        monitoring: Monitoring | None,
    ) -> None:
        self.version = version
        self.source = source
        self.departments = MappingProxyType(dict(departments))
        self.categories = MappingProxyType(dict(categories))
        self.groups = MappingProxyType(dict(groups))
        self.districts = MappingProxyType(dict(districts))
        self.governments = MappingProxyType(dict(governments))
        self.grids = MappingProxyType(dict(grids))  # grid id -> district id
        self.routes = routes
        self.catch_all = catch_all
        self.monitoring = monitoring

    def department(self, department_id: str) -> Department:
        """Names, webhook url, secret_env and escalates_to of a department; KeyError if unknown."""
        return self.departments[department_id]

    def category(self, code: str) -> CategoryInfo:
        """Names and group of a category; KeyError if the taxonomy has no such code."""
        return self.categories[code]

    def resolve(self, department: str, district: str | None) -> str | None:
        """A department id as written in a route, with `$district` made concrete."""
        if department != DISTRICT_LEAD:
            return department
        return self.governments.get(district) if district else None

    def all_routes(self) -> list[CompiledRoute]:
        return [*walk(self.routes), self.catch_all]

    def __repr__(self) -> str:
        return f"Ruleset(version={self.version!r}, source={self.source!r})"
