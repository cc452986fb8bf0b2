"""`closeloop up`, the README's first command, for real: the embedded default (SQLite in a
data folder, an embedded Redis) with API, workers and beat; an incident filed over HTTP is
dispatched; a worker killed is started again; Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, spawn, stop, wait_for
from worker.ops.embedded import free_port
from worker.ops.restarter import RestartPolicy

GAS_LEAK = {
    "source": "hotline",
    "category": "gas.leak",
    "title": "楼道里有煤气味",
    "location": {"district": "gulou"},
}

WATER_QUALITY = {
    "source": "hotline",
    "category": "water.quality",
    "title": "自来水发黄",
    "location": {"district": "gulou"},
}


def _embedded_env(data: Path, port: int) -> dict[str, str]:
    """The user's environment with no service URLs: what a newcomer's shell has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSELOOP_")}
    return {**env, "CLOSELOOP_DATA_DIR": str(data), "CLOSELOOP_API_PORT": str(port)}


def _children(pid: int) -> dict[int, str]:
    """The direct children of `pid` and their command lines, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found[int(entry.name)] = command
    return found


class Up:
    def __init__(self, process: subprocess.Popen[bytes], base: str, env: dict[str, str]):
        self.process, self.base, self.env = process, base, env

    def hotline(self) -> dict[str, str]:
        made = subprocess.run(
            [sys.executable, "-m", "worker", "token", "create", "--role", "hotline"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return {"Authorization": f"Bearer {made.stdout.strip()}"}

    def file_and_wait_dispatched(
        self, headers: dict[str, str], key: str, incident: dict[str, object]
    ) -> str:
        answer = httpx.post(
            f"{self.base}/v1/incidents",
            json=incident,
            headers={**headers, "Idempotency-Key": key},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        case_id: str = answer.json()["case_id"]

        def dispatched() -> bool:
            case = httpx.get(f"{self.base}/v1/cases/{case_id}", headers=headers, timeout=10)
            return bool(case.json()["state"] == "dispatched")

        wait_for(dispatched, timeout=90, every=0.5, what=lambda: f"case {case_id} dispatched")
        return case_id

    def pipeline_worker(self) -> int:
        return next(pid for pid, cmd in _children(self.process.pid).items() if "pipeline@" in cmd)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    port = free_port()
    env = _embedded_env(tmp_path / "data", port)
    log = tmp_path / "up.log"
    process = spawn(["up"], env, log)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout=90, every=0.5, what=lambda: "closeloop up\n" + log.read_text())
        yield Up(process, base, env)
    finally:
        # SIGTERM first: `up` then stops its embedded Redis, which runs in a session of its own.
        stop(process)


def test_up_runs_the_pipeline_restarts_a_killed_worker_and_stops_on_ctrl_c(
    up: Up, tmp_path: Path
) -> None:
    hotline = up.hotline()
    up.file_and_wait_dispatched(hotline, "first", GAS_LEAK)

    killed = up.pipeline_worker()
    os.kill(killed, signal.SIGKILL)
    wait_for(
        lambda: any(pid != killed for pid in _pipeline_workers(up)),
        timeout=30,
        what="a new pipeline worker",
    )
    up.file_and_wait_dispatched(hotline, "after-the-restart", WATER_QUALITY)

    os.killpg(up.process.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole group
    assert up.process.wait(timeout=40) == 0
    log = (tmp_path / "up.log").read_text()
    assert "closeloop stopped" in log
    assert not _children(up.process.pid)


def _pipeline_workers(up: Up) -> list[int]:
    return [pid for pid, cmd in _children(up.process.pid).items() if "pipeline@" in cmd]


def test_restarts_back_off_and_a_crash_loop_gives_up() -> None:
    policy = RestartPolicy(max_restarts=3, window=60, first_delay=0.5, max_delay=1.5)
    assert [policy.after_exit(t) for t in (0, 1, 2)] == [0.5, 1.0, 1.5]
    assert policy.after_exit(3) is None  # a fourth exit within the minute: a crash loop


def test_a_child_that_stays_up_a_whole_window_starts_afresh() -> None:
    policy = RestartPolicy(max_restarts=2, window=60, first_delay=0.5)
    assert policy.after_exit(0) == 0.5
    assert policy.after_exit(10) == 1.0
    assert policy.after_exit(100) == 0.5  # the exits at 0 and 10 are out of the window
    assert policy.after_exit(101) == 1.0
    assert policy.after_exit(102) is None
