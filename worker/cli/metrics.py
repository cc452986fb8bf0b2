"""`closeloop metrics`: the supervisors' figures as a table, JSON or CSV, read straight from
the database through the same report as `GET /v1/metrics`."""

from __future__ import annotations

import csv
import sys
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.table import Table

from worker.clock import now
from worker.config import get_settings
from worker.db.session import get_engine, session_factory
from worker.metrics.definitions import GroupBy, parse_moment
from worker.metrics.report import MetricsReport, MetricsRow, RateOut, build_report

RATES = [
    ("response", "response_rate"),
    ("closure", "closure_rate"),
    ("on time", "on_time_closure_rate"),
    ("solved", "resolution_rate"),
    ("satisfied", "satisfaction_rate"),
]


def metrics(
    since: Annotated[str, typer.Option(help="7d, 12h, 2w, or ISO 8601 with an offset.")] = "7d",
    until: Annotated[str | None, typer.Option(help="Same forms; default: now.")] = None,
    by: Annotated[GroupBy, typer.Option(help="How to group the rows.")] = GroupBy.department,
    tz: Annotated[
        str | None, typer.Option(help="IANA zone for days and weeks (CLOSELOOP_METRICS_TIME_ZONE).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON.")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="One line per group, then the total.")
    ] = False,
) -> None:
    """Received, response, closure, on-time, resolution and satisfaction rates, time to close,
    backlog and overdue, per department, category, district, day or week."""
    if as_json and as_csv:
        raise typer.BadParameter("choose --json or --csv, not both")
    report = _report(since, until, by, tz)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    elif as_csv:
        _write_csv(report)
    else:
        # Piped or captured, the table keeps its lines whole instead of wrapping at 80.
        Console(width=None if sys.stdout.isatty() else 200).print(metrics_table(report))


def _report(since: str, until: str | None, by: GroupBy, tz: str | None) -> MetricsReport:
    moment = now()
    try:
        start = parse_moment(since, moment)
        end = moment if until is None else parse_moment(until, moment)
        zone = ZoneInfo(tz or get_settings().metrics_time_zone)
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise typer.BadParameter(str(error)) from None
    with session_factory(get_engine())() as session:
        try:
            return build_report(session, start, end, by, zone)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None


def metrics_table(report: MetricsReport) -> Table:
    zone = ZoneInfo(report.time_zone)
    since, until = (f"{t.astimezone(zone):%Y-%m-%d %H:%M}" for t in (report.since, report.until))
    table = Table(title=f"closeloop metrics by {report.by.value}, {since} – {until} ({zone.key})")
    for name in ["group", "received", "merged", "closed", *(r for r, _ in RATES)]:
        table.add_column(name, justify="left" if name == "group" else "right")
    for name in ["median close", "p90 close", "backlog", "overdue"]:
        table.add_column(name, justify="right")
    for row in report.groups:
        table.add_row(*_cells(row, _group_name(row, report.by)))
    table.add_section()
    table.add_row(*_cells(report.total, "total"), style="bold")
    return table


def _group_name(row: MetricsRow, by: GroupBy) -> str:
    if row.key is not None:
        return row.key
    return "(not routed yet)" if by is GroupBy.department else "(none)"


def _cells(row: MetricsRow, name: str) -> list[str]:
    ttc = row.time_to_close
    return [
        name,
        str(row.received),
        str(row.merged),
        str(row.closed),
        *(_share(getattr(row, field)) for _, field in RATES),
        _duration(ttc.median_seconds),
        _duration(ttc.p90_seconds),
        str(row.backlog),
        str(row.overdue),
    ]


def _share(rate: RateOut) -> str:
    # 0/0 is "no data", shown as a dash: never as 0%.
    shown = "—" if rate.value is None else f"{rate.value:.0%}"
    return f"{shown} ({rate.numerator}/{rate.denominator})"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return f"{days}d {hours}h" if days else f"{hours}h {minutes:02d}m"


def _write_csv(report: MetricsReport) -> None:
    writer = csv.writer(sys.stdout)
    rates = [field for _, field in RATES]
    header = [report.by.value, "received", "merged", "cancelled", "closed"]
    for field in rates:
        header += [f"{field}_numerator", f"{field}_denominator", field]
    header += ["callbacks", "callbacks_unanswered", "median_close_seconds", "p90_close_seconds"]
    writer.writerow([*header, "backlog", "overdue"])
    for row in [*report.groups, report.total]:
        key = "total" if row is report.total else row.key
        line: list[object] = [key, row.received, row.merged, row.cancelled, row.closed]
        for field in rates:
            share: RateOut = getattr(row, field)
            line += [share.numerator, share.denominator, "" if share.value is None else share.value]
        ttc = row.time_to_close
        line += [row.callbacks, row.callbacks_unanswered, ttc.median_seconds, ttc.p90_seconds]
        writer.writerow([*line, row.backlog, row.overdue])
