"""`closeloop rules`: check, test, explain and show the routing rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from worker.contracts.incident import Incident
from worker.rules.cases import run_cases
from worker.rules.compiled import CompiledRoute, Ruleset
from worker.rules.decide import Explanation, explain
from worker.rules.decision import Decision
from worker.rules.durations import format_duration
from worker.rules.lint import warnings
from worker.rules.loader import RulesLoadError, load_ruleset
from worker.rules.registry import rules_dir
from worker.rules.targets import endpoint_warnings

app = typer.Typer(no_args_is_help=True)

RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", help="Rules folder (default: $CLOSELOOP_RULES_DIR or routing_rules)."),
]
DirArgument = Annotated[Path | None, typer.Argument(help="Rules folder or file.")]


def _load(directory: Path | None) -> Ruleset:
    try:
        return load_ruleset(directory or rules_dir())
    except RulesLoadError as exc:
        for error in exc.errors:
            typer.echo(str(error), err=True)
        typer.echo(f"refused: {len(exc.errors)} error(s)", err=True)
        raise typer.Exit(1) from exc


@app.command("check")
def check(directory: DirArgument = None) -> None:
    """Load the rules and report every error with file, line and column, and a warning for
    what loads but can never take effect."""
    ruleset = _load(directory)
    for warning in [*endpoint_warnings(ruleset), *warnings(ruleset)]:
        typer.echo(f"warning: {warning}", err=True)
    routes = len(ruleset.all_routes())
    typer.echo(
        f"ok: {len(ruleset.departments)} departments, {len(ruleset.categories)} categories, "
        f"{len(ruleset.districts)} districts, {routes} routes; version {ruleset.version}"
    )


@app.command("test")
def run_cases_command(
    cases: Annotated[Path, typer.Argument(help="Expectation cases (YAML).")],
    directory: RulesOption = None,
) -> None:
    """Decide every case and compare with its expectations; exit 1 on any miss."""
    ruleset = _load(directory)
    try:
        outcome = run_cases(ruleset, cases)
    except RulesLoadError as exc:
        for error in exc.errors:
            typer.echo(str(error), err=True)
        raise typer.Exit(2) from exc
    for miss in outcome.misses:
        typer.echo(str(miss))
    passed = outcome.total - len(outcome.misses)
    typer.echo(f"{passed}/{outcome.total} cases passed (rules {ruleset.version})")
    if outcome.misses:
        raise typer.Exit(1)


@app.command("explain")
def explain_command(
    incident_file: Annotated[
        Path, typer.Argument(help="An incident as JSON (schemas/incident.schema.json).")
    ],
    directory: RulesOption = None,
    at: Annotated[
        datetime | None,
        typer.Option("--at", help="The clock, ISO 8601 with offset (default: now)."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="A department that returned the task.")
    ] = None,
) -> None:
    """Show every route tried, in order, and why it matched or not; then the decision."""
    ruleset = _load(directory)
    try:
        incident = Incident.model_validate(json.loads(incident_file.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:
        typer.echo(f"{incident_file}: not a valid incident: {exc}", err=True)
        raise typer.Exit(2) from exc
    now = at or datetime.now(UTC)
    if now.tzinfo is None:
        typer.echo("--at needs a UTC offset, e.g. 2025-01-15T23:30:00+08:00", err=True)
        raise typer.Exit(2)
    result = explain(ruleset, incident, now, exclude=frozenset(exclude or []))
    typer.echo("\n".join(_explanation(result)))


def _explanation(result: Explanation) -> list[str]:
    lines = []
    for step in result.steps:
        indent = "  " * step.depth
        lines.append(f"{indent}{step.path}: {step.outcome}  ({step.where})")
        for held, text in step.conditions:
            lines.append(f"{indent}    {'✓' if held else '✗'} {text}")
    lines.append("")
    lines.extend(_decision(result.decision))
    return lines


def _decision(decision: Decision) -> list[str]:
    return [
        f"lead:       {decision.lead}",
        f"assisting:  {', '.join(decision.assisting) or '-'}",
        f"priority:   {decision.priority.value}",
        f"deadlines:  acknowledge within {format_duration(decision.acknowledge_within)} "
        f"(by {decision.acknowledge_due_at.isoformat()}), resolve within "
        f"{format_duration(decision.resolve_within)} (by {decision.resolve_due_at.isoformat()})",
        "escalation: "
        + (
            "; ".join(
                f"{s.level}. {format_duration(s.delay)} after {s.after} -> {s.notify}"
                for s in decision.escalation
            )
            or "-"
        ),
        f"contact:    {'shared' if decision.share_contact else 'not shared'}",
        f"routes:     {' + '.join(decision.route_path)}",
        f"rules:      {decision.ruleset_version}",
    ]


@app.command("reload")
def reload_command(
    directory: DirArgument = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for workers' answers.")] = 5.0,
) -> None:
    """Check the rules, then tell every running worker to put them in force now.

    A folder that does not load is refused here, and each worker keeps the rules it has."""
    ruleset = _load(directory)
    typer.echo(f"rules OK: version {ruleset.version}")
    from worker.tasks.app import configure

    replies = configure().control.broadcast("rules_reload", reply=True, timeout=timeout)
    if not replies:
        typer.echo("no worker answered (none running?); workers load the folder when they start")
        return
    refused = False
    for reply in replies:
        for worker, answer in reply.items():
            if answer.get("ok"):
                typer.echo(f"{worker}: in force {answer['in_force']}")
            else:
                refused = True
                typer.echo(f"{worker}: refused, keeps {answer.get('in_force')}", err=True)
                for error in answer.get("errors", []):
                    typer.echo(f"  {error}", err=True)
    if refused:
        raise typer.Exit(1)


@app.command("tree")
def tree(directory: DirArgument = None) -> None:
    """Print the route tree as indented text, in the order routes are tried."""
    ruleset = _load(directory)
    for route in ruleset.all_routes():
        typer.echo(_tree_line(route))


def _tree_line(route: CompiledRoute) -> str:
    s = route.settings
    match = "; ".join(m.describe() for m in route.matchers) or "everything"
    parts = [f"{'  ' * route.depth}{route.id}  [{match}]"]
    if route.children is None or s.lead is not None:
        lead = s.lead or "-"
        assisting = f" + {', '.join(s.assisting)}" if s.assisting else ""
        parts.append(f"-> {lead}{assisting}")
        if s.acknowledge_within is not None and s.resolve_within is not None:
            ack, resolve = format_duration(s.acknowledge_within), format_duration(s.resolve_within)
            parts.append(f"ack {ack} / resolve {resolve}")
        if s.priority is not None:
            kind, value = (
                ("fixed", s.priority.fixed) if s.priority.fixed else ("floor", s.priority.floor)
            )
            parts.append(f"priority {kind} {value}")
    else:
        parts.append("(group: leads only through a child)")
    if route.continue_:
        parts.append("continue")
    return "  ".join(parts)
