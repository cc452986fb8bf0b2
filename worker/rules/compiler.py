"""From parsed rule files to a `Ruleset`: merge the files, check every reference, compile routes.

Problems are collected, not raised, so that an author sees all of them at once; each one
carries the file and the path inside it, which the loader turns into line and column.
"""

from __future__ import annotations

import difflib
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from worker.contracts.enums import Priority
from worker.rules import geo
from worker.rules.compiled import CategoryInfo, CompiledRoute, Effective, RouteList, Ruleset
from worker.rules.decision import EscalationStep
from worker.rules.matchers import (
    AreaMatcher,
    AttributeMatcher,
    CategoryMatcher,
    FieldMatcher,
    KeywordMatcher,
    Matcher,
    NotMatcher,
    WindowMatcher,
)
from worker.rules.model import (
    DISTRICT_LEAD,
    WEEKDAYS,
    Area,
    Department,
    Match,
    Monitoring,
    Names,
    Route,
    RulesFile,
    Settings,
    TimeWindow,
    clock_minutes,
)
from worker.rules.windows import Window

if TYPE_CHECKING:
    from worker.rules.loader import Source

Loc = tuple[str | int, ...]
T = TypeVar("T")
CATCH_ALL = "catch-all"


@dataclass(frozen=True)
class Located:
    source: int | None
    loc: Loc
    message: str
    at_key: bool = False


@dataclass
class _Defined:
    """Ids of one kind, with where each was first defined."""

    kind: str
    where: dict[str, tuple[int, Loc]] = field(default_factory=dict)


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class Compiler:
    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = sources
        self.problems: list[Located] = []
        self.departments = _Defined("department")
        self.groups = _Defined("category group")
        self.codes = _Defined("category")
        self.districts = _Defined("district")
        self.grids = _Defined("grid")
        self.areas = _Defined("area")
        self.windows = _Defined("time window")
        self.route_ids = _Defined("route")

    # -- reporting ---------------------------------------------------------------------------

    def problem(self, source: int | None, loc: Loc, message: str, *, at_key: bool = False) -> None:
        self.problems.append(Located(source, loc, message, at_key))

    def define(self, ids: _Defined, value: str, source: int, loc: Loc) -> None:
        if value in ids.where:
            first_source, first_loc = ids.where[value]
            where = self._where(first_source, first_loc)
            self.problem(
                source,
                loc,
                f"duplicate {ids.kind} id {value!r} (first defined at {where}); ids must be unique",
            )
            return
        ids.where[value] = (source, loc)

    def refer(self, ids: _Defined, value: str, source: int, loc: Loc) -> bool:
        if value in ids.where:
            return True
        close = difflib.get_close_matches(value, sorted(ids.where), n=1)
        fix = f" (did you mean {close[0]!r}?)" if close else "; define it first or fix the spelling"
        self.problem(source, loc, f"unknown {ids.kind} {value!r}{fix}")
        return False

    def _where(self, source: int, loc: Loc) -> str:
        src = self.sources[source]
        position = src.document.position(loc)
        return f"{src.name}:{position.line}:{position.column}"

    # -- the whole folder --------------------------------------------------------------------

    def compile(self, *, version: str, source: str) -> Ruleset | None:
        files = [(i, s.rules) for i, s in enumerate(self.sources)]
        departments = self._departments(files)
        categories, groups = self._categories(files)
        districts, governments, grid_district = self._districts(files)
        shapes = self._areas(files)
        windows = self._windows(files)
        self._escalation_loops(departments)
        defaults = self._single(files, "defaults", Settings)
        monitoring = self._single(files, "monitoring", Monitoring)
        base = _inherit(Effective(), defaults[1]) if defaults else Effective()
        if defaults:
            self._check_settings(defaults[0], ("defaults",), defaults[1])
        context = _Context(self, tuple(categories), shapes, windows)
        routes = self._top_routes(files, base, context)
        catch_all = self._catch_all(files, base)
        if monitoring:
            self._monitoring(monitoring[0], monitoring[1])
        if self.problems or catch_all is None:
            return None
        return Ruleset(
            version=version,
            source=source,
            departments=departments,
            categories=categories,
            groups=groups,
            districts=districts,
            governments=governments,
            grids=grid_district,
            routes=routes,
            catch_all=catch_all,
            monitoring=monitoring[1] if monitoring else None,
        )

    def _single(
        self, files: list[tuple[int, RulesFile]], section: str, kind: type[T]
    ) -> tuple[int, T] | None:
        found: tuple[int, T] | None = None
        for index, rules in files:
            value = getattr(rules, section)
            if not isinstance(value, kind):
                continue
            if found is not None:
                where = self._where(found[0], (section,))
                self.problem(
                    index,
                    (section,),
                    f"a second `{section}` section (the first is at {where}); keep one",
                    at_key=True,
                )
                continue
            found = (index, value)
        return found

    # -- departments, taxonomy, places, windows ------------------------------------------------

    def _departments(self, files: list[tuple[int, RulesFile]]) -> dict[str, Department]:
        found: dict[str, Department] = {}
        for index, rules in files:
            for i, department in enumerate(rules.departments or []):
                self.define(self.departments, department.id, index, ("departments", i, "id"))
                found.setdefault(department.id, department)
        for index, rules in files:
            for i, department in enumerate(rules.departments or []):
                if department.escalates_to is not None:
                    self.refer(
                        self.departments,
                        department.escalates_to,
                        index,
                        ("departments", i, "escalates_to"),
                    )
        return found

    def _escalation_loops(self, departments: dict[str, Department]) -> None:
        reported: set[frozenset[str]] = set()
        for start in departments:
            chain, current = [start], departments[start].escalates_to
            while current is not None and current in departments and current not in chain:
                chain.append(current)
                current = departments[current].escalates_to
            if current == start and frozenset(chain) not in reported:
                reported.add(frozenset(chain))
                source, loc = self.departments.where[start]
                loop = " -> ".join([*chain, start])
                self.problem(
                    source,
                    (*loc[:-1], "escalates_to"),
                    f"escalation loop {loop}; the last department of a chain escalates to no one",
                )

    def _categories(
        self, files: list[tuple[int, RulesFile]]
    ) -> tuple[dict[str, CategoryInfo], dict[str, Names]]:
        categories: dict[str, CategoryInfo] = {}
        groups: dict[str, Names] = {}
        for index, rules in files:
            for g, group in enumerate(rules.categories or []):
                self.define(self.groups, group.group, index, ("categories", g, "group"))
                groups.setdefault(group.group, group.name)
                for c, category in enumerate(group.categories):
                    loc: Loc = ("categories", g, "categories", c, "code")
                    if not category.code.startswith(group.group + "."):
                        self.problem(
                            index,
                            loc,
                            f"category {category.code!r} is listed under group {group.group!r}; "
                            f"its code must start with '{group.group}.'",
                        )
                    self.define(self.codes, category.code, index, loc)
                    categories.setdefault(
                        category.code,
                        CategoryInfo(
                            code=category.code,
                            name=category.name,
                            group=group.group,
                            group_name=group.name,
                            duplicates=category.duplicates,
                        ),
                    )
        return categories, groups

    def _districts(
        self, files: list[tuple[int, RulesFile]]
    ) -> tuple[dict[str, Names], dict[str, str], dict[str, str]]:
        districts: dict[str, Names] = {}
        governments: dict[str, str] = {}
        grids: dict[str, str] = {}
        for index, rules in files:
            for d, district in enumerate(rules.districts or []):
                self.define(self.districts, district.id, index, ("districts", d, "id"))
                districts.setdefault(district.id, district.name)
                if district.government is not None:
                    loc: Loc = ("districts", d, "government")
                    if self.refer(self.departments, district.government, index, loc):
                        governments[district.id] = district.government
                for g, grid in enumerate(district.grids):
                    self.define(self.grids, grid.id, index, ("districts", d, "grids", g, "id"))
                    grids.setdefault(grid.id, district.id)
        return districts, governments, grids

    def _areas(self, files: list[tuple[int, RulesFile]]) -> dict[str, tuple[geo.Shape, ...]]:
        shapes: dict[str, tuple[geo.Shape, ...]] = {}
        for index, rules in files:
            for a, area in enumerate(rules.areas or []):
                self.define(self.areas, area.id, index, ("areas", a, "id"))
                compiled = self._area(index, a, area)
                if compiled:
                    shapes.setdefault(area.id, compiled)
        return shapes

    def _area(self, index: int, a: int, area: Area) -> tuple[geo.Shape, ...]:
        geometry = area.geometry
        polygons = [geometry.coordinates] if geometry.type == "Polygon" else geometry.coordinates
        prefix: Loc = ("areas", a, "geometry", "coordinates")
        result = []
        for p, rings in enumerate(polygons):
            base = prefix if geometry.type == "Polygon" else (*prefix, p)
            problems = [(r, geo.ring_problem(ring)) for r, ring in enumerate(rings)]
            for r, problem in problems:
                if problem:
                    self.problem(index, (*base, r), f"area {area.id!r}: {problem}")
            if not any(problem for _, problem in problems):
                result.append(geo.shape(rings))
        return tuple(result)

    def _windows(self, files: list[tuple[int, RulesFile]]) -> dict[str, Window]:
        windows: dict[str, Window] = {}
        for index, rules in files:
            for w, window in enumerate(rules.windows or []):
                self.define(self.windows, window.id, index, ("windows", w, "id"))
                compiled = self._window(index, w, window)
                if compiled is not None:
                    windows.setdefault(window.id, compiled)
        return windows

    def _window(self, index: int, w: int, window: TimeWindow) -> Window | None:
        try:
            zone = zoneinfo.ZoneInfo(window.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(window.timezone, sorted(_time_zones()), n=1)
            fix = (
                f" (did you mean {close[0]!r}?)"
                if close
                else "; use an IANA name such as 'Asia/Shanghai'"
            )
            self.problem(
                index, ("windows", w, "timezone"), f"unknown time zone {window.timezone!r}{fix}"
            )
            return None
        start, end = clock_minutes(window.start), clock_minutes(window.end)
        if start == end:
            self.problem(
                index,
                ("windows", w, "end"),
                "start and end are equal; a window for the whole day needs no window",
            )
            return None
        days = (
            None
            if window.weekdays is None
            else frozenset(WEEKDAYS.index(d) for d in window.weekdays)
        )
        return Window(window.id, zone, start, end, days)

    # -- routes -----------------------------------------------------------------------------

    def _top_routes(
        self, files: list[tuple[int, RulesFile]], base: Effective, context: _Context
    ) -> RouteList:
        compiled = []
        for index, rules in files:
            for r, route in enumerate(rules.routes or []):
                loc: Loc = ("routes", r)
                self.define(self.route_ids, route.id, index, (*loc, "id"))
                compiled.append(context.route(index, loc, route, base, parent_path="", depth=0))
        return RouteList(compiled, context.codes)

    def _catch_all(
        self, files: list[tuple[int, RulesFile]], base: Effective
    ) -> CompiledRoute | None:
        found = self._single(files, "catch_all", Settings)
        if found is None:
            routes_file = next((i for i, rules in files if rules.routes), None)
            self.problem(
                routes_file,
                (),
                "no `catch_all` section: add one whose lead is the operations centre, so that "
                "no incident goes unrouted",
            )
            return None
        index, settings = found
        loc: Loc = ("catch_all",)
        self._check_settings(index, loc, settings)
        effective = _inherit(base, settings)
        if effective.lead is None:
            self.problem(index, loc, "the catch-all needs a `lead`: the operations centre")
        elif effective.lead == DISTRICT_LEAD:
            self.problem(
                index, (*loc, "lead"), "the catch-all's lead must be one department, not $district"
            )
        self._check_deadlines(index, loc, settings, effective, CATCH_ALL)
        return CompiledRoute(
            id=CATCH_ALL,
            path=CATCH_ALL,
            depth=0,
            matchers=(),
            settings=effective,
            continue_=False,
            children=None,
            categories=None,
            where=self._where(index, loc),
        )

    def _check_settings(self, index: int, loc: Loc, settings: Settings) -> None:
        """Every department a route or a section names must exist."""
        if settings.lead is not None and settings.lead != DISTRICT_LEAD:
            self.refer(self.departments, settings.lead, index, (*loc, "lead"))
        for i, department in enumerate(settings.assisting or []):
            if department != DISTRICT_LEAD:
                self.refer(self.departments, department, index, (*loc, "assisting", i))
        for i, step in enumerate(settings.escalation or []):
            self.refer(self.departments, step.notify, index, (*loc, "escalation", i, "notify"))

    def _check_deadlines(
        self, index: int, loc: Loc, settings: Settings, effective: Effective, path: str
    ) -> None:
        for name in ("acknowledge_within", "resolve_within"):
            if getattr(effective, name) is None:
                self.problem(
                    index,
                    loc,
                    f"route {path!r} has no {name}; set it here, on a parent or in `defaults`",
                )
        ack, resolve = effective.acknowledge_within, effective.resolve_within
        if ack is not None and resolve is not None and ack > resolve:
            where = (
                "resolve_within" if settings.resolve_within is not None else "acknowledge_within"
            )
            self.problem(
                index,
                (*loc, where),
                f"route {path!r}: acknowledge_within is longer than resolve_within; "
                "a case is acknowledged before it is resolved",
            )

    def _monitoring(self, index: int, monitoring: Monitoring) -> None:
        self.refer(
            self.codes, monitoring.default_category, index, ("monitoring", "default_category")
        )
        for i, alert in enumerate(monitoring.alerts):
            self.refer(self.codes, alert.category, index, ("monitoring", "alerts", i, "category"))


def _inherit(parent: Effective, own: Settings) -> Effective:
    escalation = parent.escalation
    if own.escalation is not None:
        escalation = tuple(
            EscalationStep(level=n, after=s.after, delay=s.delay, notify=s.notify)
            for n, s in enumerate(own.escalation, start=1)
        )
    return Effective(
        lead=own.lead if own.lead is not None else parent.lead,
        assisting=tuple(own.assisting) if own.assisting is not None else parent.assisting,
        priority=own.priority if own.priority is not None else parent.priority,
        acknowledge_within=_pick(own.acknowledge_within, parent.acknowledge_within),
        resolve_within=_pick(own.resolve_within, parent.resolve_within),
        escalation=escalation,
        share_contact=own.share_contact if own.share_contact is not None else parent.share_contact,
        duplicates=own.duplicates if own.duplicates is not None else parent.duplicates,
    )


def _pick(own: T | None, inherited: T | None) -> T | None:
    return own if own is not None else inherited


class _Context:
    """Compiles routes and their matchers, reporting through the compiler."""

    def __init__(
        self,
        compiler: Compiler,
        codes: tuple[str, ...],
        shapes: dict[str, tuple[geo.Shape, ...]],
        windows: dict[str, Window],
    ) -> None:
        self.compiler = compiler
        self.codes = codes
        self.shapes = shapes
        self.windows = windows

    def route(
        self, index: int, loc: Loc, route: Route, parent: Effective, *, parent_path: str, depth: int
    ) -> CompiledRoute:
        c = self.compiler
        path = f"{parent_path}/{route.id}" if parent_path else route.id
        c._check_settings(index, loc, route)
        effective = _inherit(parent, route)
        matchers = self.matchers(index, (*loc, "match"), route.match) if route.match else ()
        children = (
            self.children(index, loc, route.routes, effective, path, depth)
            if route.routes
            else None
        )
        if effective.lead is None and children is None:
            c.problem(
                index,
                (*loc, "id"),
                f"route {path!r} has no lead and no child routes; set `lead:` here or on a parent",
            )
        if effective.lead is not None:
            c._check_deadlines(index, loc, route, effective, path)
        own = _categories(route.match, self.codes)
        return CompiledRoute(
            id=route.id,
            path=path,
            depth=depth,
            matchers=matchers,
            settings=effective,
            continue_=route.continue_,
            children=children,
            categories=own if own is not None or effective.lead is not None else _union(children),
            where=c._where(index, loc),
        )

    def children(
        self,
        index: int,
        loc: Loc,
        routes: Sequence[Route],
        parent: Effective,
        path: str,
        depth: int,
    ) -> RouteList:
        ids = _Defined("route")
        compiled = []
        for r, child in enumerate(routes):
            child_loc: Loc = (*loc, "routes", r)
            self.compiler.define(ids, child.id, index, (*child_loc, "id"))
            compiled.append(
                self.route(index, child_loc, child, parent, parent_path=path, depth=depth + 1)
            )
        return RouteList(compiled, self.codes)

    def matchers(self, index: int, loc: Loc, match: Match) -> tuple[Matcher, ...]:
        c = self.compiler
        found: list[Matcher] = []
        if match.category is not None:
            found.append(self._category(index, (*loc, "category"), match.category))
        for name, ids, fact in (
            ("district", c.districts, "district"),
            ("grid", c.grids, "grid"),
            ("source", None, "source"),
        ):
            values = getattr(match, name)
            if values is not None:
                for i, value in enumerate(values):
                    if ids is not None:
                        c.refer(ids, value, index, (*loc, name, i))
                found.append(FieldMatcher(fact, frozenset(values), tuple(values)))
        if match.priority is not None:
            found.append(
                FieldMatcher(
                    "hint", frozenset(Priority(p) for p in match.priority), tuple(match.priority)
                )
            )
        if match.area is not None:
            found.append(self._area(index, (*loc, "area"), match.area))
        if match.window is not None:
            found.append(self._window(index, (*loc, "window"), match.window))
        if match.keywords is not None:
            found.append(
                KeywordMatcher(tuple(k.casefold() for k in match.keywords), tuple(match.keywords))
            )
        for key, values in (match.attributes or {}).items():
            found.append(AttributeMatcher(key, tuple(values)))
        if match.not_ is not None:
            found.append(NotMatcher(self.matchers(index, (*loc, "not"), match.not_)))
        return tuple(found)

    def _category(self, index: int, loc: Loc, patterns: list[str]) -> CategoryMatcher:
        c = self.compiler
        for i, pattern in enumerate(patterns):
            if pattern.endswith(".*"):
                c.refer(c.groups, pattern.removesuffix(".*"), index, (*loc, i))
            else:
                c.refer(c.codes, pattern, index, (*loc, i))
        codes = frozenset(p for p in patterns if not p.endswith(".*"))
        groups = tuple(p.removesuffix("*") for p in patterns if p.endswith(".*"))
        return CategoryMatcher(codes, groups, tuple(patterns))

    def _area(self, index: int, loc: Loc, names: list[str]) -> AreaMatcher:
        for i, name in enumerate(names):
            self.compiler.refer(self.compiler.areas, name, index, (*loc, i))
        return AreaMatcher(tuple(s for n in names for s in self.shapes.get(n, ())), tuple(names))

    def _window(self, index: int, loc: Loc, names: list[str]) -> WindowMatcher:
        for i, name in enumerate(names):
            self.compiler.refer(self.compiler.windows, name, index, (*loc, i))
        return WindowMatcher(tuple(self.windows[n] for n in names if n in self.windows))


def _categories(match: Match | None, codes: Iterable[str]) -> frozenset[str] | None:
    """The taxonomy codes a route's own category condition lets through; None if it has none."""
    if match is None or match.category is None:
        return None
    exact = {p for p in match.category if not p.endswith(".*")}
    prefixes = tuple(p.removesuffix("*") for p in match.category if p.endswith(".*"))
    return frozenset(code for code in codes if code in exact or code.startswith(prefixes))


def _union(children: RouteList | None) -> frozenset[str] | None:
    # A group (no lead of its own) matches only through a child: it can take what they take.
    if children is None:
        return frozenset()
    result: set[str] = set()
    for child in children.routes:
        if child.categories is None:
            return None
        result |= child.categories
    return frozenset(result)
