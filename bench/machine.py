"""Print what machine a benchmark ran on: every figure is only meaningful beside this."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"machine: {cpu}, {os.cpu_count()} cores{memory}; "
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}"
    )


if __name__ == "__main__":
    print(describe())
