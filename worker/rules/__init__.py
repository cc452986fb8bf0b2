"""Routing rules: the language, its loader, and the pure decision function.

Other modules call:

- `registry.get()` for the ruleset in force (it looks for a changed folder first),
  `registry.reload()` to load it now;
- `lint.warnings(ruleset)` for what loads but can never take effect;
- `decide(ruleset, incident, now, exclude=...)` for a `Decision`, `explain(...)` for the why;
- `ruleset.department(id)` and `ruleset.category(code)` for names, webhooks and groups;
- `incident_from_alert(ruleset, labels, annotations)` to turn a firing alert into an incident.
"""

from worker.rules.alerts import incident_from_alert
from worker.rules.compiled import CategoryInfo, Ruleset
from worker.rules.decide import Explanation, Step, decide, explain
from worker.rules.decision import Decision, EscalationStep
from worker.rules.loader import RuleError, RulesLoadError, load_ruleset
from worker.rules.model import Department, DuplicatePolicy

__all__ = [
    "CategoryInfo",
    "Decision",
    "Department",
    "DuplicatePolicy",
    "EscalationStep",
    "Explanation",
    "RuleError",
    "RulesLoadError",
    "Ruleset",
    "Step",
    "decide",
    "explain",
    "incident_from_alert",
    "load_ruleset",
]
