"""CPU time by process group, read from /proc (Linux): where a benchmark's work went.

    with CpuMeter({"api": [api_pid], "pipeline worker": [pid]}, database="closeloop_x") as m:
        ...
    m.report(1000, "case")

A group is the given processes and all their descendants (`alone`: just the process itself,
for one whose children are counted in groups of their own); `database` adds the PostgreSQL
backends connected to that database (their command line names it), and the Redis server is
counted whole (it may serve others too). Elsewhere than Linux the meter reports nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds so far)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[int, str, float]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        found[int(entry.name)] = (
            int(fields[1]),
            command,
            (int(fields[11]) + int(fields[12])) / tick,
        )
    return found


class CpuMeter:
    def __init__(
        self,
        roots: dict[str, list[int]],
        *,
        alone: dict[str, int] | None = None,
        database: str | None = None,
    ) -> None:
        self.roots, self.alone, self.database = roots, alone or {}, database
        self.seconds: dict[str, float] = {}
        self._before: dict[str, dict[int, float]] = {}

    def _groups(self) -> dict[str, dict[int, float]]:
        table = _processes()
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in table.items():
            children.setdefault(parent, []).append(pid)
        groups: dict[str, dict[int, float]] = {}
        for name, roots in self.roots.items():
            members, todo = set(), list(roots)
            while todo:
                pid = todo.pop()
                if pid in table and pid not in members:
                    members.add(pid)
                    todo.extend(children.get(pid, []))
            groups[name] = {pid: table[pid][2] for pid in members}
        for name, pid in self.alone.items():
            groups[name] = {pid: table[pid][2]} if pid in table else {}
        if self.database:
            groups["PostgreSQL (this database)"] = {
                pid: cpu for pid, (_, cmd, cpu) in table.items()
                if cmd.startswith("postgres:") and f" {self.database} " in cmd
            }  # fmt: skip
        groups["redis-server"] = {
            pid: cpu for pid, (_, cmd, cpu) in table.items() if cmd.startswith("redis-server")
        }
        return groups

    def __enter__(self) -> CpuMeter:
        if PROC.exists():
            self._before = self._groups()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._before:
            return
        for name, after in self._groups().items():
            before = self._before.get(name, {})
            self.seconds[name] = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    def report(self, count: int, unit: str) -> list[str]:
        if not self.seconds:
            return ["  (CPU by process: needs Linux's /proc)"]
        lines = [
            f"  {name:30s} {1000 * seconds / count:6.1f} ms CPU per {unit}"
            for name, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])
        ]
        total = sum(self.seconds.values())
        lines.append(f"  {'all of these':30s} {1000 * total / count:6.1f} ms CPU per {unit}")
        return lines
