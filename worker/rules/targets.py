"""Where the rules send departments' webhooks: warnings about targets inside the network.

A webhook is a signed POST to whatever URL the rules name. Outside development, a URL on
loopback, a link-local address (cloud metadata services live there) or a private network
more likely sends tasks somewhere they should not go than to a department: `rules check`
and every load of the rules say so (a warning, not a refusal: some cities do run their
departments' endpoints on a private network).
"""

from __future__ import annotations

from worker.config import get_settings
from worker.rules.compiled import Ruleset
from worker.urls import private_target, safe_url


def endpoint_warnings(ruleset: Ruleset) -> list[str]:
    """One line per department whose URL is inside the network; none in development."""
    if get_settings().environment == "development":
        return []
    warnings = []
    for department_id, department in sorted(ruleset.departments.items()):
        reason = private_target(str(department.url))
        if reason is not None:
            warnings.append(
                f"department {department_id}: webhook URL {safe_url(str(department.url))} "
                f"points inside this network ({reason}); expected only in development "
                "(CLOSELOOP_ENVIRONMENT=development)"
            )
    return warnings
