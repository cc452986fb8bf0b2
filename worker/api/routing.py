"""Which routes answer at a path, whatever the method: for the `Allow` of a 405, and for
knowing, before a route runs, whether it needs a token."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.types import Scope

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before its included routers: `app.routes` is already flat

    def iter_route_contexts(routes: Iterable[Any]) -> Iterator[Any]:  # type: ignore[misc]
        return iter(routes)


def routes_at(scope: Scope) -> Iterator[Any]:
    """The routes (FastAPI's route contexts) whose path matches the request's."""
    app = scope.get("app")
    path = scope.get("path", "")
    for route in iter_route_contexts(getattr(app, "routes", ())):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            yield route


def allowed_methods(scope: Scope) -> list[str]:
    """Every method some route takes at the request's path."""
    methods: set[str] = set()
    for route in routes_at(scope):
        methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)
