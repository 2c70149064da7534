"""Migrations: a new store on either backend, stores written before Alembic (the last
release's file in tests/dashboard/data/history_v3, and versions 1-2), refusals and rollback."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, text

from dashboard import history, schema
from dashboard.history import HistoryStore
from dashboard.store import engine as store_engine
from dashboard.store import migrate

RELEASED = Path(__file__).parents[1] / "data" / "history_v3"
TABLES = {"patients", "visits", "photos", "sign_scores", "easi", "easi_regions", "audit", "users"}


@pytest.fixture
def sqlite_store(tmp_path):
    """Opens HistoryStore(tmp_path) on its SQLite file; forgets the engine afterwards."""
    url = f"sqlite:///{tmp_path / history.DB_NAME}"
    yield lambda: HistoryStore(tmp_path)
    store_engine.dispose(url)
    HistoryStore._migrated.discard(url)


def _user_version(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def test_fresh_store_is_at_head(make_store):
    store = make_store()
    assert migrate.current(store.engine) == migrate.head() == "0003"
    assert TABLES <= set(inspect(store.engine).get_table_names())
    if store.backend == "sqlite":
        with sqlite3.connect(store.path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert _user_version(store.path) == migrate.LEGACY_LOCKOUT


def test_the_released_store_migrates_whole(tmp_path, sqlite_store, make_assessment):
    shutil.copytree(RELEASED, tmp_path, dirs_exist_ok=True)
    assert _user_version(tmp_path / history.DB_NAME) == 3
    store = sqlite_store()
    assert migrate.current(store.engine) == migrate.head()
    assert store.patients() == ["PT-0001", "PT_2.b"]
    first, second = store.visits("PT-0001")
    assert (first.visit_date, first.n_photos, first.easi_total, first.easi_band) == (
        dt.date(2026, 1, 10), 2, pytest.approx(4.7), "mild")
    assert (second.visit_date, second.n_photos, first.model) == (
        dt.date(2026, 2, 10), 1, "dermsev-demo 0.1.0")
    assert first.assessor is None  # saved before accounts existed
    [other] = store.visits("PT_2.b")
    assert other.age is None and other.easi_total is None
    trend = store.trend("PT-0001")
    ery = trend[trend.series == "erythema"]
    assert list(ery.value.round(4)) == [1.8226, 1.8226]
    assert list(dict.fromkeys(trend.series)) == [
        "erythema", "papulation", "excoriation", "lichenification", "EASI"]
    back = store.load(first.id)
    assert back.photos[0].image.shape == (48, 64, 3) and back.photos[1].maps.shape == (4, 48, 64)
    assert np.asarray(back.photos[0].maps).max() == pytest.approx(3.0, abs=0.01)
    new = store.save(make_assessment(pseudonym="PT-0001", visit_date=dt.date(2026, 3, 1)),
                     assessor="dr_a")  # fmt: skip
    assert new == 4 and store.visits("PT-0001")[-1].assessor == "dr_a"
    # the last release (schema.migrate) now refuses the file instead of writing to it
    with sqlite3.connect(tmp_path / history.DB_NAME, isolation_level=None) as db:
        with pytest.raises(RuntimeError, match="newer than this dermsev understands"):
            schema.migrate(db)


@pytest.mark.parametrize("version", [1, 2])
def test_older_stores_migrate(tmp_path, sqlite_store, make_assessment, version):
    path = tmp_path / history.DB_NAME
    db = sqlite3.connect(path, isolation_level=None)
    assert schema.migrate(db, target=version) == version
    db.execute("INSERT INTO patients (pseudonym, sex, created_at) VALUES ('OLD-1', 'M', 'x')")
    db.close()
    store = sqlite_store()
    assert migrate.current(store.engine) == migrate.head()
    assert store.patients() == ["OLD-1"]
    unknown_age = make_assessment(pseudonym="OLD-1")
    unknown_age.age = None  # version 3 made age optional
    visit = store.save(unknown_age)
    assert store.visits("OLD-1")[0].easi_band == "mild" and store.load(visit).age is None


def test_newer_legacy_file_refused(tmp_path, sqlite_store):
    with sqlite3.connect(tmp_path / history.DB_NAME) as db:
        db.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this dermsev understands"):
        sqlite_store()


def test_unknown_revision_refused(make_store, store_url):
    store = make_store()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    HistoryStore._migrated.discard(store_url)
    with pytest.raises(RuntimeError, match="revision 9999, newer than this dermsev"):
        make_store()


def test_failed_migration_leaves_nothing(make_store, store_url, monkeypatch):
    real = migrate.command.upgrade

    def upgrade_then_fail(cfg, revision):
        real(cfg, revision)
        raise OSError("disk full")

    monkeypatch.setattr(migrate.command, "upgrade", upgrade_then_fail)
    with pytest.raises(OSError, match="disk full"):
        make_store()
    engine = store_engine.get_engine(store_url)
    assert set(inspect(engine).get_table_names()) == set()  # DDL rolled back with the rest


def test_database_url_from_env(tmp_path, monkeypatch):
    monkeypatch.delenv(store_engine.URL_ENV, raising=False)
    assert store_engine.database_url(tmp_path) == f"sqlite:///{tmp_path / history.DB_NAME}"
    monkeypatch.setenv(store_engine.URL_ENV, "postgresql://u:p%40ss@db:5432/clinic")
    assert store_engine.database_url(tmp_path) == "postgresql+psycopg://u:p%40ss@db:5432/clinic"
    with pytest.raises(ValueError, match="only sqlite:/// and postgresql:// URLs"):
        store_engine.database_url(tmp_path, "mysql://u@db/clinic")


def test_required_postgres_that_is_down_fails(monkeypatch):
    """In CI (DERMSEV_TEST_POSTGRES set) a missing server fails the run instead of skipping."""
    import importlib.util  # this folder's conftest, by path: the fixture's own check

    spec = importlib.util.spec_from_file_location("store_conftest", Path(__file__).with_name("conftest.py"))
    store_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(store_conftest)
    monkeypatch.setenv(store_conftest.PG_ENV, "postgresql://nobody:x@127.0.0.1:9/none")
    with pytest.raises(pytest.fail.Exception, match="is set but PostgreSQL at .* is unreachable"):
        store_conftest._postgres()
