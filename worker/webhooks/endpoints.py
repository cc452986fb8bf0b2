"""Where a department's webhooks go and what signs them, from the routing rules in force.

The rules name, for each department, its URL and the environment variable holding its
`whsec_...` secret(s) (never the secret itself). Tests and tools build an `Endpoint` directly
and pass their own lookup wherever `endpoint_for` is the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from worker.config import get_settings
from worker.rules import Ruleset, RulesLoadError, registry
from worker.webhooks.signing import parse_secrets


class EndpointUnusable(Exception):
    """The department cannot be sent to as configured; the message says what to fix."""


@dataclass(frozen=True)
class Endpoint:
    department: str
    url: str
    secrets: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.secrets:
            raise EndpointUnusable(f"department {self.department} has no webhook secret")


EndpointLookup = Callable[[str], Endpoint]


def _ruleset() -> Ruleset:
    try:
        # Looked up afresh at each attempt: a URL edited in the rules folder is where the
        # very next attempt goes, deliveries queued before the edit included.
        return registry.get(look_now=True)
    except RulesLoadError as error:
        raise EndpointUnusable(f"the routing rules cannot be loaded: {error}") from error


def endpoint_for(department_id: str) -> Endpoint:
    """The department's endpoint as the rules in force define it."""
    try:
        department = _ruleset().department(department_id)
    except KeyError as error:
        raise EndpointUnusable(
            f"department {department_id} is not in the routing rules in force"
        ) from error
    return endpoint_from_env(department_id, str(department.url), department.secret_env)


def endpoint_from_env(department_id: str, url: str, secret_env: str) -> Endpoint:
    """An endpoint whose secrets are in the variable `secret_env` (read now, so a rotation
    takes effect at the next attempt)."""
    secrets = parse_secrets(os.environ.get(secret_env))
    if not secrets:
        raise EndpointUnusable(
            f"the webhook secret of department {department_id} is missing: set the environment "
            f"variable {secret_env} (whsec_..., several separated by spaces during rotation)"
        )
    return Endpoint(department=department_id, url=url, secrets=secrets)


def ops_department() -> str:
    """Who hears about endpoints that went away: the setting, else the rules' catch-all lead."""
    configured = get_settings().ops_department
    if configured:
        return configured
    lead = _ruleset().catch_all.settings.lead
    if not lead:
        raise EndpointUnusable("the routing rules' catch-all names no lead department")
    return lead
