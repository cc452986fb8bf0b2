"""`closeloop rules reload`, reaching every running worker: a Celery remote-control command.

Each worker reloads its rules folder and answers with the version now in force, or with the
errors that made it keep the old one. (Every process also reloads by itself within seconds
of a change to the folder: `registry.get()` looks for one whenever the rules are read.)
"""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command

from worker.rules.loader import RulesLoadError
from worker.rules.registry import default


@control_command()
def rules_reload(state: Any) -> dict[str, Any]:
    registry = default()
    try:
        ruleset = registry.reload()
    except RulesLoadError as error:
        in_force = registry.get().version if registry.loaded else None
        return {"ok": False, "in_force": in_force, "errors": [str(e) for e in error.errors]}
    return {"ok": True, "in_force": ruleset.version}
