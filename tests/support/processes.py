"""Real worker and beat processes for end-to-end tests, started as a user starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def interruptible() -> None:
    """For `preexec_fn`: SIGINT as a terminal delivers it. A shell running a script in the
    background (a CI runner may) starts it with SIGINT ignored, which its children inherit;
    then a test's Ctrl-C would reach nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        preexec_fn=interruptible,
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


# Every process a test session starts inherits this variable (set when the session begins),
# so what outlived the session can be found even once it is nobody's child any more: a
# worker whose parent was killed, a postgres started by pg_ctl. A server that rewrites its
# process title (redis-server) loses its environment from view; it is found by its working
# folder instead, which `session_folder` names with the mark.
SESSION_MARK = "CLOSELOOP_TEST_SESSION"


def session_folder(mark: str, kind: str) -> Path:
    """A new folder for an embedded server of the session marked `mark`."""
    return Path(tempfile.mkdtemp(prefix=f"closeloop-test-{mark}-{kind}-"))


# multiprocessing's resource tracker, started by the first process pool the session uses: it
# serves the session to its end and exits with it, as it is made to.
_LIVES_WITH_THE_SESSION = b"multiprocessing.resource_tracker"


def marked(mark: str) -> list[int]:
    """The live processes the session marked `mark` started (see SESSION_MARK), but for this
    one and its ancestors (what started the session, `timeout pytest ...` say, may carry it)."""
    wanted = f"{SESSION_MARK}={mark}".encode()
    found = []
    ours = _ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environment = (entry / "environ").read_bytes().split(b"\0")
            folder = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if _LIVES_WITH_THE_SESSION in command:
            continue
        if state not in ("Z", "X") and (wanted in environment or f"-{mark}-" in folder):
            found.append(int(entry.name))
    return found


def _ancestors() -> set[int]:
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def describe(pid: int) -> str:
    try:
        command = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} {command.decode(errors='replace').strip()[:200]}"


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
