"""Who is calling, and may they: FastAPI dependencies over `worker.auth`.

Routes say what they need in their signature::

    caller: Annotated[Principal, Depends(require(Role.hotline, Role.supervisor))]

`require(...)` answers 401 (with `WWW-Authenticate: Bearer`) for a missing, unknown,
revoked or expired token (an expired one is told so) and 403 for a role not listed. Admin
passes wherever supervisor does. A department token's scope is `caller.department`; a route
shows a department only its own things and answers 404 (not 403) for the rest, so that ids
of others' work do not leak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from worker.auth import Principal, Role, TokenExpired, authenticate
from worker.db.session import autocommit

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `closeloop token create`, as `Authorization: Bearer cl_...`.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def current_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller behind the bearer token; 401 without a valid one."""
    if credentials is None:
        raise HTTPException(401, "Send a token as `Authorization: Bearer ...`.", _CHALLENGE)
    try:
        with autocommit() as session:  # a look-up, and at most one UPDATE of `last_used_at`
            principal = authenticate(session, credentials.credentials)
    except TokenExpired as expired:
        raise HTTPException(401, str(expired), _CHALLENGE) from expired
    if principal is None:
        raise HTTPException(401, "The token is unknown or revoked.", _CHALLENGE)
    return principal


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
