"""Keeping `closeloop up`'s processes running, as docker-compose's `restart: unless-stopped`
does in production: a child that exits is started again after a short back-off; a child
that keeps dying (a crash loop: a bad setting, a port taken) stops everything with its
name, rather than spinning forever."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from worker.logging import get_logger

log = get_logger("closeloop.supervisor")


@dataclass
class RestartPolicy:
    """When to start an exited child again. Pure: it is told the time, it keeps no clock.

    A child may exit `max_restarts` times within `window` seconds; the next exit in that
    window is a crash loop. Each restart waits twice as long as the one before (from
    `first_delay` to `max_delay`), and the wait falls back once the child has stayed up
    for a whole window."""

    max_restarts: int = 5
    window: float = 60.0
    first_delay: float = 0.5
    max_delay: float = 10.0
    _exits: deque[float] = field(default_factory=deque)

    def after_exit(self, now: float) -> float | None:
        """Record an exit at `now`; the seconds to wait before restarting, or None to give up."""
        while self._exits and now - self._exits[0] > self.window:
            self._exits.popleft()
        if len(self._exits) >= self.max_restarts:
            return None
        self._exits.append(now)
        delay: float = self.first_delay * 2.0 ** (len(self._exits) - 1)
        return min(self.max_delay, delay)


Spawn = Callable[[list[str]], "subprocess.Popen[bytes]"]


def spawn_closeloop(command: list[str]) -> subprocess.Popen[bytes]:
    """One of our own console commands, as a child of this process."""
    return subprocess.Popen([sys.executable, "-m", "worker", *command])  # noqa: S603 - our own CLI


@dataclass
class _Child:
    command: list[str]
    process: subprocess.Popen[bytes]
    policy: RestartPolicy
    restart_at: float | None = None


class CrashLoop(RuntimeError):
    def __init__(self, command: Sequence[str], code: int | None) -> None:
        super().__init__(
            f"`closeloop {' '.join(command)}` keeps exiting (last exit code {code}); "
            "its log above says why"
        )


class Supervisor:
    """Runs commands as children until `stop` is set, restarting the ones that exit."""

    def __init__(
        self,
        commands: Sequence[list[str]],
        spawn: Spawn = spawn_closeloop,
        policy: Callable[[], RestartPolicy] = RestartPolicy,
        poll: float = 0.25,
    ) -> None:
        self._spawn = spawn
        self._poll = poll
        self._children = [_Child(list(c), spawn(list(c)), policy()) for c in commands]
        self.restarts = 0

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [child.process for child in self._children]

    def run(self, stop: threading.Event) -> None:
        """Watch the children until `stop` is set. Raises CrashLoop if one keeps dying."""
        while not stop.wait(self._poll):
            now = time.monotonic()
            for child in self._children:
                self._tend(child, now)

    def _tend(self, child: _Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.process = self._spawn(child.command)
                child.restart_at = None
                self.restarts += 1
                log.info("process restarted", command=child.command, pid=child.process.pid)
            return
        code = child.process.poll()
        if code is None:
            return
        delay = child.policy.after_exit(now)
        if delay is None:
            raise CrashLoop(child.command, code)
        log.warning("process exited; restarting", command=child.command, code=code, delay=delay)
        child.restart_at = now + delay

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every running child, then SIGKILL what has not exited after `grace` s."""
        running = [c.process for c in self._children if c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
