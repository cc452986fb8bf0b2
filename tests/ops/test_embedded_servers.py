"""The embedded Redis stops when told, whoever is still connected and whatever became of its
folder: `closeloop up` and the test session leave no redis-server behind."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis

from worker.ops.embedded import EmbeddedRedis, _alive


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("folder_removed", [False, True])
@pytest.mark.parametrize("clients", [0, 3])
def test_stop_ends_the_server(
    tmp_path: Path, persistent: bool, folder_removed: bool, clients: int
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistent=persistent)
    connected = [redis.Redis.from_url(server.url) for _ in range(clients)]
    for client in connected:
        client.set("key", "value")
    if folder_removed:
        shutil.rmtree(tmp_path / "redis")
    started = time.monotonic()
    try:
        server.stop()
        assert not _alive(server.pid)
        assert time.monotonic() - started < 5  # shut down, not killed after a wait
    finally:
        for client in connected:
            client.close()
    server.stop()  # twice is harmless


def test_a_persistent_server_keeps_its_data_across_a_restart(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "redis")
    holder = redis.Redis.from_url(first.url)
    holder.set("case", "kept")
    first.stop()
    holder.close()
    second = EmbeddedRedis(tmp_path / "redis")
    try:
        assert redis.Redis.from_url(second.url).get("case") == b"kept"
    finally:
        second.stop()
