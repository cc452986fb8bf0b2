"""Engines and sessions. One engine per process and URL; sessions are short and explicit."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from worker.config import get_settings


def _to_json(value: Any) -> str:
    return orjson.dumps(value).decode()


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def make_engine(url: str, **kwargs: Any) -> Engine:
    # orjson reads and writes JSON columns several times faster than the standard library,
    # which `audit verify` feels on a million events.
    kwargs.setdefault("json_serializer", _to_json)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
    _ENGINES.add(engine)
    return engine


def _forget_inherited_connections() -> None:
    # A forked child (a Celery pool process started again after one died) inherits its
    # parent's pooled connections; two processes talking on one socket corrupt both. The
    # child drops them without closing them (closing would end the parent's sessions too)
    # and opens its own.
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL lets the API read while the worker writes; the busy timeout turns a lock clash
    # between the embedded processes into a short wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class StoreNotFound(RuntimeError):
    """The embedded store's file is not where the settings say: most often a command run
    outside the folder `closeloop up` runs in."""


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        store = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        if not store.exists():
            # SQLite would make an empty file, or fail with "unable to open database file".
            raise StoreNotFound(
                f"no closeloop store at {store}: run this where `closeloop up` runs, or say "
                "where its data folder is with --data-dir (or CLOSELOOP_DATA_DIR), or set "
                "CLOSELOOP_DATABASE_URL"
            )
    return make_engine(url)


def get_engine() -> Engine:
    return engine_for(get_settings().resolved_database_url())


_FACTORIES: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    # One per engine: each sessionmaker is a new Session subclass, and SQLAlchemy sets up its
    # event dispatch afresh for every class, which a transaction should not pay for.
    bind = engine or get_engine()
    factory = _FACTORIES.get(bind)
    if factory is None:
        factory = _FACTORIES[bind] = sessionmaker(bind=bind, expire_on_commit=False)
    return factory


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back on an error."""
    with session_factory(engine)() as session, session.begin():
        yield session


@contextmanager
def autocommit(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose statements each commit on their own, for work that needs no
    transaction (a look-up, and at most one single-statement write): it saves the BEGIN and
    COMMIT round trips, which every API request's token check would pay."""
    with (engine or get_engine()).connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        with Session(bind=connection, expire_on_commit=False) as session:
            yield session
