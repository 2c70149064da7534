"""The pre-Alembic SQLite store's schema steps (PRAGMA user_version), frozen.

The store now migrates with Alembic (dashboard/store/migrations); these steps only bring a
store written by an older dermsev (user_version 1 or 2) to version 3, which Alembic's
baseline revision 0001 takes over from (dashboard/store/migrate.py). Never edit or add a step.
  1  patients, visits (with the assessment's JSON), photos, sign_scores
  2  easi (total, band) and easi_regions (area and intensities per region)
  3  visits.age may be NULL (age unknown): the table is rebuilt, its rows kept
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _run(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): that commits first, which would break a step's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1_core(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        CREATE TABLE patients (
            id INTEGER PRIMARY KEY, pseudonym TEXT NOT NULL UNIQUE, sex TEXT,
            created_at TEXT NOT NULL);
        CREATE TABLE visits (
            id INTEGER PRIMARY KEY,
            patient_id INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
            visit_date TEXT NOT NULL, age REAL NOT NULL, region TEXT NOT NULL,
            model_name TEXT, model_version TEXT, created_at TEXT NOT NULL,
            assessment_json TEXT NOT NULL);
        CREATE TABLE photos (
            id INTEGER PRIMARY KEY,
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            position INTEGER NOT NULL, name TEXT NOT NULL, region TEXT NOT NULL,
            image_path TEXT, maps_path TEXT);
        CREATE TABLE sign_scores (
            photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
            sign TEXT NOT NULL, score REAL NOT NULL, label TEXT NOT NULL,
            affected_area REAL NOT NULL, uncertainty_low REAL, uncertainty_high REAL,
            PRIMARY KEY (photo_id, sign));
        CREATE INDEX visits_by_patient ON visits(patient_id, visit_date);
    """,
    )


def _v2_easi(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        CREATE TABLE easi (
            visit_id INTEGER PRIMARY KEY REFERENCES visits(id) ON DELETE CASCADE,
            age_group TEXT NOT NULL, total REAL NOT NULL, band TEXT NOT NULL);
        CREATE TABLE easi_regions (
            visit_id INTEGER NOT NULL REFERENCES easi(visit_id) ON DELETE CASCADE,
            region TEXT NOT NULL, area INTEGER NOT NULL,
            erythema REAL NOT NULL, papulation REAL NOT NULL, excoriation REAL NOT NULL,
            lichenification REAL NOT NULL, score REAL NOT NULL,
            PRIMARY KEY (visit_id, region));
    """,
    )


def _v3_age_optional(db: sqlite3.Connection) -> None:
    # SQLite cannot drop NOT NULL: rebuild the table (migrate() turns foreign keys off
    # around the steps, so dropping the old table cascades to nothing).
    _run(
        db,
        """
        CREATE TABLE visits_v3 (
            id INTEGER PRIMARY KEY,
            patient_id INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
            visit_date TEXT NOT NULL, age REAL, region TEXT NOT NULL,
            model_name TEXT, model_version TEXT, created_at TEXT NOT NULL,
            assessment_json TEXT NOT NULL);
        INSERT INTO visits_v3 SELECT id, patient_id, visit_date, age, region, model_name,
            model_version, created_at, assessment_json FROM visits;
        DROP TABLE visits;
        ALTER TABLE visits_v3 RENAME TO visits;
        CREATE INDEX visits_by_patient ON visits(patient_id, visit_date);
    """,
    )
    broken = db.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"history database: {len(broken)} rows lost their visit in migration 3")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_core, _v2_easi, _v3_age_optional]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, target: int | None = None) -> int:
    """Apply the migrations after the file's `user_version`, up to `target` (default: all).

    db must be in autocommit mode (isolation_level=None). Each step runs in its own
    transaction with its version bump, so a failed step leaves the file at the previous
    version. A file from a newer dermsev is refused. Returns the version reached.
    """
    latest = len(MIGRATIONS)
    target = latest if target is None else target
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > latest:
        raise RuntimeError(
            f"the history database is schema version {current}, newer than this dermsev "
            f"understands ({latest}); update dermsev"
        )
    keys = db.execute("PRAGMA foreign_keys").fetchone()[0]
    db.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: set it before
    try:
        for version in range(current + 1, target + 1):
            db.execute("BEGIN")
            try:
                MIGRATIONS[version - 1](db)
                db.execute(f"PRAGMA user_version = {version}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
    finally:
        db.execute(f"PRAGMA foreign_keys = {'ON' if keys else 'OFF'}")
    return max(current, target)
