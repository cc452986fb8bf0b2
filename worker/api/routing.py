"""Which routes answer at a path, whatever the method: for the `Allow` of a 405, and for
knowing, before a route runs, whether it needs a token; and which query parameters an
operation takes, so that one it does not is refused rather than ignored."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
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
    """The methods the resource at the request's path takes. A path written out in full
    (`/v1/deliveries/replay`) is its own resource, even where a template
    (`/v1/deliveries/{delivery_id}`) would match it too."""
    matching = list(routes_at(scope))
    exact = [route for route in matching if getattr(route, "path_format", None) == scope["path"]]
    methods: set[str] = set()
    for route in exact or matching:
        methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _declared_query(dependant: Any) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return frozenset(names)


_QUERY_OF: dict[int, frozenset[str]] = {}


async def known_query_only(request: Request) -> None:
    """A dependency for every operation: a query parameter it does not take is a 422, not
    silently ignored (`?satte=open` would list every case, which is not what was asked)."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    key = id(route)
    if key not in _QUERY_OF:
        _QUERY_OF[key] = _declared_query(route.dependant)
    declared = _QUERY_OF[key]
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        takes = ", ".join(sorted(declared)) or "none"
        problems = [
            {
                "loc": ("query", name),
                "msg": f"is not a query parameter of this operation (it takes: {takes})",
                "type": "value_error",
            }
            for name in unknown
        ]
        raise RequestValidationError(problems)
