"""A forked process (a Celery pool process started again after one died) must open its own
database connections, never talk on its parent's pooled sockets."""

from __future__ import annotations

import os

from sqlalchemy import Engine, text


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_forked_child_opens_its_own_connection(pg_engine: Engine) -> None:
    parent = _backend_pid(pg_engine)  # now pooled, checked in, ready for reuse
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write, str(_backend_pid(pg_engine)).encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 64).decode()
    os.waitpid(child, 0)
    assert answer, "the child could not query"
    assert int(answer) != parent
    assert _backend_pid(pg_engine) == parent, "the parent's own connection survived the fork"
