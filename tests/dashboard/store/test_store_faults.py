"""Faults: a server killed in the middle of a save, two server processes on one store, a full
disk and a read-only store (the page's message)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from dashboard.history import HistoryStore
from dashboard.store.errors import describe

SAVER = Path(__file__).with_name("saver.py")


def _saver(folder, url, pseudonym, n, slow=False):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(SAVER), str(folder), url, pseudonym, str(n),
                             *(["--slow"] if slow else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def _counts(store) -> dict:
    with store.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()
                for t in ("visits", "photos", "sign_scores", "easi", "easi_regions", "audit")}  # fmt: skip


def _whole(store, visits: int) -> None:
    """Every visit has its 3 photos, 12 scores, EASI with its 2 regions and its audit entry."""
    assert _counts(store) == {"visits": visits, "photos": 3 * visits, "sign_scores": 12 * visits,
                              "easi": visits, "easi_regions": 2 * visits, "audit": visits}  # fmt: skip


@pytest.mark.slow  # a process per case (~10 s: it imports the dashboard)
def test_killed_mid_save_leaves_whole_visits(tmp_path, store_url, make_assessment):
    proc = _saver(tmp_path, store_url, "KILL-1", 50, slow=True)
    saved = writing = 0
    for line in proc.stdout:  # kill it while it writes the second photo of its third visit
        saved += line.startswith("saved")
        writing += line.startswith("writing")
        if saved == 2 and writing == 8:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    store = HistoryStore(tmp_path, url=store_url)
    _whole(store, 2)  # the half-saved third visit left no row at all
    assert [v.n_photos for v in store.visits("KILL-1")] == [3, 3]
    if store.backend == "sqlite":
        with sqlite3.connect(store.path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    # its photo files may be left on disk without a row: swept once old enough
    orphans = {int(p.name) for p in (tmp_path / "images").iterdir()} - {v.id for v in store.visits("KILL-1")}
    assert len(orphans) == 1  # the killed save's folder
    assert store.sweep_orphans() == []  # too young: it could be another server's save in progress
    assert store.sweep_orphans(min_age_s=0) == sorted(orphans)
    assert {int(p.name) for p in (tmp_path / "images").iterdir()} == {v.id for v in store.visits("KILL-1")}
    store.save(make_assessment(pseudonym="KILL-1", n_photos=3))
    _whole(store, 3)


@pytest.mark.slow
def test_two_processes_on_one_new_sqlite_store(tmp_path):
    """Both start on a folder with no database: one migrates it, both save, nothing is lost."""
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    procs = [_saver(tmp_path, url, name, 8) for name in ("PROC-A", "PROC-B")]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert out.count("saved") == 8
    store = HistoryStore(tmp_path, url=url)
    _whole(store, 16)
    for name in ("PROC-A", "PROC-B"):
        visits = store.visits(name)
        assert len(visits) == 8 and {v.assessor for v in visits} == {name}
        assert len({v.id for v in visits}) == 8
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_full_database_is_said_plainly(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'tiny.sqlite3'}")

    @event.listens_for(engine, "connect")
    def _small(dbapi, _record):  # a database that may not grow past 8 pages: a full disk
        dbapi.execute("PRAGMA max_page_count = 8")

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x BLOB)"))
    with pytest.raises(Exception, match="database or disk is full") as err, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (randomblob(100000))"))
    assert describe(err.value).startswith("Could not save the visit: the disk that holds the patient store is full.")
    assert "read-only" in describe(OSError(30, "Read-only file system"))
    assert "cannot be reached" in describe(Exception("connection refused"), "open the patient store")


def test_the_wal_switch_is_retried_when_sqlite_refuses_it_at_once(monkeypatch) -> None:
    """Two processes opening a new store: SQLite may answer "database is locked" at once (no
    busy wait, it would deadlock); the switch is retried, and another error is not."""

    from dashboard.store import engine as eng

    class Raw:
        def __init__(self, outcomes: list) -> None:
            self.outcomes = outcomes

        def cursor(self):
            return self

        def execute(self, sql: str):
            outcome = self.outcomes.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return self

        def fetchone(self):
            return ("wal",)

        def close(self) -> None:
            pass

    class Engine:
        def __init__(self, outcomes: list) -> None:
            self.outcomes = outcomes

        def raw_connection(self):
            return Raw(self.outcomes)

    monkeypatch.setattr(eng.time, "sleep", lambda s: None)
    locked = sqlite3.OperationalError("database is locked")
    outcomes = [locked, locked, "ok"]
    assert eng.use_wal(Engine(outcomes)) == "wal" and outcomes == []
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        eng.use_wal(Engine([sqlite3.OperationalError("disk I/O error")]))
