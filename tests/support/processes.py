"""Real worker and beat processes for end-to-end tests, started as a user starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spawn(
    args: list[str], env: dict[str, str], log: Path, module: str = "worker"
) -> subprocess.Popen[bytes]:
    """`python -m worker ARGS` (or another module) with the test's CLOSELOOP_* settings."""
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group: the worker and its pool children, no goodbyes."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def running(
    args: list[str], env: dict[str, str], log: Path, module: str = "worker"
) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(args, env, log, module)
    try:
        yield process
    finally:
        stop(process)


def wait_for(
    condition: Callable[[], bool],
    timeout: float = 30,
    every: float = 0.1,
    what: str | Callable[[], str] = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what if isinstance(what, str) else what()}"
    )
