"""Bring a store's database up to the newest schema when it opens.

Alembic revisions live in migrations/versions (0001 is the schema the pre-Alembic store
reached). A SQLite store written before Alembic (PRAGMA user_version 1-3, no alembic_version
table) is first brought to version 3 by the frozen steps in dashboard/schema.py, then stamped
0001 and upgraded like any other. Afterwards user_version is set to LEGACY_LOCKOUT so that an
older dermsev refuses the file instead of writing visits without their audit records.

Everything runs in one write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: under an
advisory lock), so two servers starting at once on a new store migrate it once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, inspect, text

from dashboard import schema
from dashboard.store.engine import use_wal, write

BASELINE = "0001"
LEGACY_LOCKOUT = 100  # > any pre-Alembic schema version: an older dermsev refuses the file
_PG_LOCK = 15_0001  # pg_advisory_xact_lock key for migrations
SCRIPTS = Path(__file__).with_name("migrations")


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = conn
    return cfg


def head() -> str:
    """The newest revision this dermsev knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: not under Alembic yet)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Migrate the database to the newest revision; returns it. A database from a newer
    dermsev is refused with RuntimeError."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        _legacy_sqlite(Path(url.database))
        use_wal(engine)
    with write(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        names = set(inspect(conn).get_table_names())
        cfg = _config(conn)
        if "patients" in names and "alembic_version" not in names:
            command.stamp(cfg, BASELINE)
        try:
            command.upgrade(cfg, "head")
        except CommandError as exc:
            if "Can't locate revision" in str(exc):
                raise RuntimeError(
                    f"the history database is at revision {_revision(conn)}, newer than this "
                    "dermsev understands; update dermsev") from exc  # fmt: skip
            raise
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA user_version = {LEGACY_LOCKOUT}")
    return head()


def _revision(conn: Connection) -> str:
    return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())


def _legacy_sqlite(path: Path) -> None:
    """Bring a pre-Alembic store (user_version 1-2) to version 3 with the frozen steps."""
    if not path.exists():
        return
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" in tables:
            return
        if version > schema.SCHEMA_VERSION:
            raise RuntimeError(
                f"the history database is schema version {version}, newer than this dermsev "
                f"understands ({schema.SCHEMA_VERSION}); update dermsev")  # fmt: skip
        if 0 < version < schema.SCHEMA_VERSION:
            schema.migrate(db)
    finally:
        db.close()
