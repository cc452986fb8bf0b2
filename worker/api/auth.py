"""Who is calling, and may they: FastAPI dependencies over `worker.auth`.

Routes say what they need in their signature::

    caller: Annotated[Principal, Depends(require(Role.hotline, Role.supervisor))]

`require(...)` answers 401 (with `WWW-Authenticate: Bearer`) for a missing, unknown,
revoked or expired token (an expired one is told so) and 403 for a role not listed. Admin
passes wherever supervisor does. A department token's scope is `caller.department`; a route
shows a department only its own things and answers 404 (not 403) for the rest, so that ids
of others' work do not leak.

`TokenFirst` checks the token of a request to such a route before anything else looks at
the request: a caller without a valid token learns nothing from the API, not even whether
its body would have been too large or malformed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.api.problems import problem
from worker.api.routing import routes_at
from worker.auth import Principal, Role, TokenExpired, authenticate
from worker.db.session import autocommit

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `closeloop token create`, as `Authorization: Bearer cl_...`.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_MISSING = "Send a token as `Authorization: Bearer ...`."
_UNKNOWN = "The token is unknown or revoked."
# Where `TokenFirst` leaves the caller it found, so that the route does not look again.
_PRINCIPAL = "closeloop.principal"


def _look_up(token: str) -> Principal:
    try:
        with autocommit() as session:  # a look-up, and at most one UPDATE of `last_used_at`
            principal = authenticate(session, token)
    except TokenExpired as expired:
        raise HTTPException(401, str(expired), _CHALLENGE) from expired
    if principal is None:
        raise HTTPException(401, _UNKNOWN, _CHALLENGE)
    return principal


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller behind the bearer token; 401 without a valid one."""
    found = request.scope.get(_PRINCIPAL)
    if isinstance(found, Principal):
        return found
    if credentials is None:
        raise HTTPException(401, _MISSING, _CHALLENGE)
    return await run_in_threadpool(_look_up, credentials.credentials)


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only callers with one of `roles` (admin as supervisor)."""
    allowed = frozenset(roles)
    names = ", ".join(sorted(role.value for role in allowed))

    # async: it only compares roles, so it runs on the event loop instead of taking a trip
    # to the thread pool (the token look-up before it does need one).
    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has_role(allowed):
            raise HTTPException(403, f"A {principal.role} token may not do this (needs: {names}).")
        return principal

    return check


class TokenFirst:
    """Pure ASGI middleware: a request to a route that needs a token is answered 401 at once
    without a valid one, before its size, media type or body are looked at."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._guarded: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._needs_token(scope):
            try:
                scope[_PRINCIPAL] = await self._caller(scope)
            except HTTPException as refusal:
                answer = problem(401, "Not signed in", str(refusal.detail), refusal.headers)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _needs_token(self, scope: Scope) -> bool:
        for route in routes_at(scope):
            dependant = getattr(route, "dependant", None)
            if dependant is None:
                continue
            key = id(dependant)
            if key not in self._guarded:
                self._guarded[key] = _depends_on(dependant, current_principal)
            if self._guarded[key]:
                return True
        return False

    @staticmethod
    async def _caller(scope: Scope) -> Principal:
        token = _bearer_token(scope)
        if token is None:
            raise HTTPException(401, _MISSING, _CHALLENGE)
        return await run_in_threadpool(_look_up, token)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = bytes(value).decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _depends_on(dependant: Dependant, call: Any) -> bool:
    return any(sub.call is call or _depends_on(sub, call) for sub in dependant.dependencies)
