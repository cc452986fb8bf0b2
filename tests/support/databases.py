"""Real PostgreSQL for tests: the machine's (CLOSELOOP_TEST_POSTGRES_URL) or an embedded one.

Each test that asks for a database gets a new one, cloned from a migrated template, so tests
never see each other's rows and can run from several checkouts at once.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, make_url, text
from sqlalchemy.engine import URL

from worker.db.migrate import upgrade
from worker.db.session import make_engine


def _admin_engine(server_url: str) -> Engine:
    return make_engine(server_url, isolation_level="AUTOCOMMIT")


class PostgresDatabases:
    def __init__(self, server_url: str) -> None:
        self.server_url = make_url(server_url)
        self._admin = _admin_engine(server_url)
        self.template = f"closeloop_tpl_{uuid.uuid4().hex[:10]}"
        self._execute(f'CREATE DATABASE "{self.template}"')
        upgrade(self.url_of(self.template).render_as_string(hide_password=False))
        self._created: list[str] = []

    def url_of(self, database: str) -> URL:
        return self.server_url.set(database=database)

    def create(self) -> str:
        name = f"closeloop_t_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self._created.append(name)
        return self.url_of(name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._created:
            self._created.remove(name)

    def close(self) -> None:
        for name in [*self._created, self.template]:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin.dispose()

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(sql))
