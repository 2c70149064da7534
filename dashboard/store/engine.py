"""Which database the store uses and how its connections are set up.

SQLite (the default, `<data folder>/history.sqlite3`): WAL journal, so readers never wait for
the writer and a second server process on the same file is safe; foreign keys on; a 30 s busy
timeout; write transactions take the write lock at BEGIN (BEGIN IMMEDIATE), so two writers
queue instead of failing half-way. PostgreSQL when $DERMSEV_DATABASE_URL says so
(`postgresql://user:password@host/db`, driven by psycopg 3).
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

URL_ENV = "DERMSEV_DATABASE_URL"
DB_NAME = "history.sqlite3"
BUSY_MS = 30_000
_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def database_url(folder: Path, url: str | None = None) -> str:
    """`url`, else $DERMSEV_DATABASE_URL, else SQLite in `folder`; postgresql:// -> psycopg 3."""
    url = (url or os.environ.get(URL_ENV, "")).strip()
    if not url:
        return f"sqlite:///{Path(folder) / DB_NAME}"
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"{URL_ENV}: only sqlite:/// and postgresql:// URLs are supported, "
                         f"got {parsed.get_backend_name()}")  # fmt: skip
    return parsed.render_as_string(hide_password=False)


def get_engine(url: str) -> Engine:
    """One engine (connection pool) per database URL and process."""
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = _make_engine(url)
        return _ENGINES[url]


def dispose(url: str) -> None:
    """Close the pooled connections of `url`'s engine (tests, and before deleting a file)."""
    with _LOCK:
        engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


def _make_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi, _record) -> None:
        dbapi.isolation_level = None  # we send BEGIN ourselves (below)
        cursor = dbapi.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def use_wal(engine: Engine) -> str:
    """Switch a SQLite file to the WAL journal (persistent, once per file); the mode reached.

    Two processes opening a new store at once can both hold a read lock while each asks for the
    exclusive lock the switch needs; SQLite then answers "database is locked" at once, without
    waiting on the busy timeout (it would deadlock). The switch is retried until BUSY_MS."""
    deadline = time.monotonic() + BUSY_MS / 1000
    while True:
        raw = engine.raw_connection()  # outside any transaction: the pragma cannot run in one
        try:
            return str(raw.cursor().execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        finally:
            raw.close()
        time.sleep(0.05 + 0.1 * random.random())  # apart, so the two do not collide again


@contextlib.contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed when the block ends, rolled back if it raises.

    SQLite takes its write lock at BEGIN (IMMEDIATE), so a transaction that reads, then writes
    cannot fail half-way on another writer; on PostgreSQL it is an ordinary transaction.
    """
    with engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            yield conn
