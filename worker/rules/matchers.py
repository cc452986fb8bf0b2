"""Compiled route conditions: each one tests the facts of an incident and can say why.

The facts of an incident are read once per decision (`Facts`); a matcher only looks them up,
so testing a route costs a few set look-ups, not a walk over the incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from worker.contracts.incident import Incident
from worker.rules.geo import Shape
from worker.rules.windows import Window


class Facts:
    """What routes look at, read once from an incident and the clock."""

    __slots__ = (
        "_raw_text",
        "_text",
        "attributes",
        "category",
        "district",
        "grid",
        "hint",
        "lat",
        "lon",
        "now",
        "source",
    )

    def __init__(self, incident: Incident, now: datetime) -> None:
        where = incident.location
        self.category = incident.category
        self.district = where.district
        self.grid = where.grid
        self.lon = where.longitude
        self.lat = where.latitude
        self.hint = incident.priority_hint
        self.source = incident.source
        self.attributes = incident.attributes
        self.now = now
        self._text: str | None = None
        self._raw_text = incident.text

    @property
    def text(self) -> str:
        # Case folding is the costly part of keywords; most decisions never need it.
        if self._text is None:
            self._text = self._raw_text().casefold()
        return self._text


class Matcher(Protocol):
    def test(self, facts: Facts) -> bool: ...

    def explain(self, facts: Facts) -> str: ...

    def describe(self) -> str: ...


def _listed(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True, slots=True)
class CategoryMatcher:
    codes: frozenset[str]
    groups: tuple[str, ...]  # "water." for `water.*`
    written: tuple[str, ...]

    def test(self, facts: Facts) -> bool:
        category = facts.category
        return category in self.codes or any(category.startswith(g) for g in self.groups)

    def explain(self, facts: Facts) -> str:
        return f"category {facts.category} in [{_listed(self.written)}]"

    def describe(self) -> str:
        return f"category: {_listed(self.written)}"


@dataclass(frozen=True, slots=True)
class FieldMatcher:
    """district, grid, source, priority: one fact among a set of values."""

    field: str
    values: frozenset[str]
    written: tuple[str, ...]

    def test(self, facts: Facts) -> bool:
        return getattr(facts, self.field) in self.values

    def explain(self, facts: Facts) -> str:
        label = "priority hint" if self.field == "hint" else self.field
        return f"{label} {getattr(facts, self.field) or '(none)'} in [{_listed(self.written)}]"

    def describe(self) -> str:
        return f"{'priority' if self.field == 'hint' else self.field}: {_listed(self.written)}"


@dataclass(frozen=True, slots=True)
class AreaMatcher:
    shapes: tuple[Shape, ...]
    written: tuple[str, ...]

    def test(self, facts: Facts) -> bool:
        lon, lat = facts.lon, facts.lat
        if lon is None or lat is None:
            return False
        return any(shape.contains(lon, lat) for shape in self.shapes)

    def explain(self, facts: Facts) -> str:
        if facts.lon is None:
            return f"location (no coordinates) inside area [{_listed(self.written)}]"
        return f"location [{facts.lon}, {facts.lat}] inside area [{_listed(self.written)}]"

    def describe(self) -> str:
        return f"area: {_listed(self.written)}"


@dataclass(frozen=True, slots=True)
class KeywordMatcher:
    words: tuple[str, ...]  # case-folded
    written: tuple[str, ...]

    def test(self, facts: Facts) -> bool:
        # Substring search, not word split: Chinese text has no spaces between words.
        text = facts.text
        return any(word in text for word in self.words)

    def explain(self, facts: Facts) -> str:
        found = [w for w, f in zip(self.written, self.words, strict=True) if f in facts.text]
        return f"text contains any of [{_listed(self.written)}] (found: {_listed(found) or 'none'})"

    def describe(self) -> str:
        return f"keywords: {_listed(self.written)}"


@dataclass(frozen=True, slots=True)
class WindowMatcher:
    windows: tuple[Window, ...]

    def test(self, facts: Facts) -> bool:
        return any(window.holds(facts.now) for window in self.windows)

    def explain(self, facts: Facts) -> str:
        spans = "; ".join(f"{w.id} {w.describe()}" for w in self.windows)
        return f"now {facts.now.isoformat()} inside window [{spans}]"

    def describe(self) -> str:
        return f"window: {_listed(w.id for w in self.windows)}"


def _same(a: object, b: object) -> bool:
    # YAML `true` must not equal the number 1, nor "1" the number 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


@dataclass(frozen=True, slots=True)
class AttributeMatcher:
    key: str
    values: tuple[str | int | float | bool, ...]

    def test(self, facts: Facts) -> bool:
        if self.key not in facts.attributes:
            return False
        actual = facts.attributes[self.key]
        return any(_same(actual, v) for v in self.values)

    def explain(self, facts: Facts) -> str:
        actual = facts.attributes.get(self.key, "(absent)")
        return f"attributes.{self.key} {actual!r} in [{_listed(repr(v) for v in self.values)}]"

    def describe(self) -> str:
        return f"attributes.{self.key}: {_listed(self.values)}"


@dataclass(frozen=True, slots=True)
class NotMatcher:
    inner: tuple[Matcher, ...]

    def test(self, facts: Facts) -> bool:
        return not all(m.test(facts) for m in self.inner)

    def explain(self, facts: Facts) -> str:
        parts = " and ".join(m.explain(facts) for m in self.inner)
        return f"not ({parts})"

    def describe(self) -> str:
        return f"not ({'; '.join(m.describe() for m in self.inner)})"
