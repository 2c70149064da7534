"""The store's tests run on SQLite and on a real PostgreSQL server.

PostgreSQL: $DERMSEV_TEST_POSTGRES is its URL (or "1" for the default below, the role and
database .ci/run creates). When it is set, a server that cannot be reached fails the tests;
when it is not set, they are skipped unless the default server answers. Each test gets a
schema of its own (dropped afterwards), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dashboard.history import HistoryStore
from dashboard.store import engine as store_engine

PG_ENV = "DERMSEV_TEST_POSTGRES"
DEFAULT_PG = "postgresql+psycopg://dermsev_test:dermsev_test@localhost:5432/dermsev_test"


def _postgres() -> str | None:
    """The test server's URL, or None (skip) when none is configured or reachable."""
    setting = os.environ.get(PG_ENV, "").strip()
    url = DEFAULT_PG if setting in ("", "1") else store_engine.database_url(".", setting)
    probe = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if setting:
            pytest.fail(f"{PG_ENV} is set but PostgreSQL at {make_url(url)!r} is unreachable: {exc}")
        return None
    finally:
        probe.dispose()
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str | None:
    return _postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, postgres_url):
    """A fresh, empty database's URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
        yield url
        store_engine.dispose(url)
        HistoryStore._migrated.discard(url)
        return
    if postgres_url is None:
        pytest.skip(f"no PostgreSQL server (set {PG_ENV} to require one)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)
    yield url
    store_engine.dispose(url)
    HistoryStore._migrated.discard(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def make_store(store_url, tmp_path):
    """Opens the store on the test's database (images in tmp_path)."""
    return lambda: HistoryStore(tmp_path, url=store_url)
