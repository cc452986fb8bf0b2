"""A test session leaves no process behind: not the embedded Redis and PostgreSQL it starts
when no service URLs are given, not a worker or API process a test starts."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tests.support.processes import SESSION_MARK, describe, kill_all, marked
from tests.support.service import ROOT


def run_probe(**extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    mark = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="closeloop-probe-") as folder:
        return _run(Path(folder), mark, extra), mark


def _run(folder: Path, mark: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSELOOP_")}
    env.update({SESSION_MARK: mark, **extra})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(folder),
            "tests/support/session_probe.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )


def test_a_session_with_embedded_servers_and_workers_leaves_no_process() -> None:
    finished, mark = run_probe()
    left = marked(mark)
    kill_all(left)
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-2000:]
    assert left == [], [describe(pid) for pid in left]


def test_a_process_left_running_is_named_killed_and_fails_the_session() -> None:
    finished, mark = run_probe(CLOSELOOP_PROBE_LEAK="1")
    left = marked(mark)
    kill_all(left)
    assert finished.returncode == 1, finished.stdout[-4000:]
    assert "the test session left processes running (now killed)" in finished.stdout
    assert "time.sleep(300)" in finished.stdout
    assert left == []
