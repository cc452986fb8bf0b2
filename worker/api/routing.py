"""Which routes answer at a path, whatever the method: for the `Allow` of a 405, and for
knowing, before a route runs, whether it needs a token; and which query parameters an
operation takes, so that one it does not (or one given twice that takes one value) is
refused rather than ignored."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import UnionType
from typing import Any, Union, get_args, get_origin

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


def _declared_query(dependant: Any) -> dict[str, bool]:
    """Each query parameter the operation takes, and whether it may be given more than once."""
    names = {param.alias: _is_list(param.field_info.annotation) for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_is_list(member) for member in get_args(annotation))
    return origin in (list, set, tuple) or annotation in (list, set, tuple)


_QUERY_OF: dict[int, dict[str, bool]] = {}


async def known_query_only(request: Request) -> None:
    """A dependency for every operation: a query parameter it does not take, or one given
    twice that takes one value, is a 422 rather than ignored (`?satte=open` would list every
    case; of `?department=gas&department=water` one would be dropped unseen)."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    key = id(route)
    if key not in _QUERY_OF:
        _QUERY_OF[key] = _declared_query(route.dependant)
    declared = _QUERY_OF[key]
    takes = ", ".join(sorted(declared)) or "none"
    problems = []
    for name in sorted(set(request.query_params)):
        if name not in declared:
            why = f"is not a query parameter of this operation (it takes: {takes})"
        elif not declared[name] and len(request.query_params.getlist(name)) > 1:
            why = "is given more than once; it takes one value"
        else:
            continue
        problems.append({"loc": ("query", name), "msg": why, "type": "value_error"})
    if problems:
        raise RequestValidationError(problems)
