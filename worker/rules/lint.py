"""Warnings about rules that load but cannot do what they say: `closeloop rules check`
prints them; routing goes on as the rules say."""

from __future__ import annotations

from worker.rules.compiled import CompiledRoute, RouteList, Ruleset
from worker.rules.matchers import FieldMatcher


def warnings(ruleset: Ruleset) -> list[str]:
    return list(_alert_duplicates(ruleset))


def _alert_duplicates(ruleset: Ruleset) -> list[str]:
    """A duplicate policy on a route only alerts reach, while the monitoring mapping takes
    neither coordinates nor an address from an alert's labels: duplicates are looked for by
    place, so no alert is ever folded by it (only a repeat of the same alert, by its
    fingerprint)."""
    monitoring = ruleset.monitoring
    if monitoring is None or monitoring.maps_a_place:
        return []
    source = monitoring.source
    found: list[str] = []

    def visit(routes: RouteList, parent: CompiledRoute | None, parent_alerts_only: bool) -> None:
        for route in routes.routes:
            alerts_only = parent_alerts_only or _only_from(route, source)
            policy = route.settings.duplicates
            inherited = parent is not None and parent.settings.duplicates is policy
            if alerts_only and policy is not None and not (parent_alerts_only and inherited):
                found.append(
                    f"{route.where}: route {route.path}: its duplicate policy can never apply: "
                    f"only '{source}' alerts reach it, and the monitoring section maps no "
                    "coordinates or address from their labels (set latitude_label and "
                    "longitude_label, or address_label); alerts are folded only when "
                    "Alertmanager repeats the same one (same fingerprint)"
                )
            if route.children is not None:
                visit(route.children, route, alerts_only)

    visit(ruleset.routes, None, False)
    return found


def _only_from(route: CompiledRoute, source: str) -> bool:
    return any(
        isinstance(matcher, FieldMatcher)
        and matcher.field == "source"
        and matcher.values == {source}
        for matcher in route.matchers
    )
