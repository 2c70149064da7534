"""The store's tables at the newest migration, as SQLAlchemy Core (one schema for SQLite and
PostgreSQL). Dates and times are ISO 8601 text, as the pre-Alembic SQLite stores wrote them.

  patients(id, pseudonym UNIQUE, sex, created_at)          pseudonyms only, never names
  visits(id, patient_id, visit_date, age, region, model_name, model_version, model_hash,
         assessor, created_at, assessment_json)
  photos(id, visit_id, position, name, region, image_path, maps_path)
  sign_scores(photo_id, sign, score, label, affected_area, uncertainty_low/high)
  easi(visit_id, age_group, total, band), easi_regions(visit_id, region, area, 4 signs, score)
  audit(id, at, actor, action, visit_id, pseudonym, detail)     append-only (triggers)
  users(id, username UNIQUE, password_hash, role, disabled, created_at, failed, failed_at)
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

metadata = MetaData()

patients = Table(
    "patients", metadata,
    Column("id", Integer, primary_key=True),
    Column("pseudonym", Text, nullable=False, unique=True),
    Column("sex", Text),
    Column("created_at", Text, nullable=False),
)  # fmt: skip

visits = Table(
    "visits", metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", Integer, ForeignKey("patients.id", ondelete="CASCADE"), nullable=False),
    Column("visit_date", Text, nullable=False),
    Column("age", Float),
    Column("region", Text, nullable=False),
    Column("model_name", Text),
    Column("model_version", Text),
    Column("created_at", Text, nullable=False),
    Column("assessment_json", Text, nullable=False),
    Column("model_hash", Text),  # sha256 of the weights file (revision 0002)
    Column("assessor", Text),  # the signed-in user who saved it (revision 0002)
)  # fmt: skip

photos = Table(
    "photos", metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("region", Text, nullable=False),
    Column("image_path", Text),
    Column("maps_path", Text),
)  # fmt: skip

sign_scores = Table(
    "sign_scores", metadata,
    Column("photo_id", Integer, ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
    Column("sign", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("label", Text, nullable=False),
    Column("affected_area", Float, nullable=False),
    Column("uncertainty_low", Float),
    Column("uncertainty_high", Float),
    PrimaryKeyConstraint("photo_id", "sign"),
)  # fmt: skip

easi = Table(
    "easi", metadata,
    Column("visit_id", Integer, ForeignKey("visits.id", ondelete="CASCADE"), primary_key=True),
    Column("age_group", Text, nullable=False),
    Column("total", Float, nullable=False),
    Column("band", Text, nullable=False),
)  # fmt: skip

easi_regions = Table(
    "easi_regions", metadata,
    Column("visit_id", Integer, ForeignKey("easi.visit_id", ondelete="CASCADE"), nullable=False),
    Column("region", Text, nullable=False),
    Column("area", Integer, nullable=False),
    Column("erythema", Float, nullable=False),
    Column("papulation", Float, nullable=False),
    Column("excoriation", Float, nullable=False),
    Column("lichenification", Float, nullable=False),
    Column("score", Float, nullable=False),
    PrimaryKeyConstraint("visit_id", "region"),
)  # fmt: skip

# No foreign key to visits: the trail outlives an erased patient.
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("visit_id", Integer),
    Column("pseudonym", Text),
    Column("detail", Text, nullable=False, default=""),
)  # fmt: skip

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Text, nullable=False),
    Column("failed", Integer, nullable=False, default=0),  # failed sign-ins in a row
    Column("failed_at", Text),  # the last failed sign-in
)  # fmt: skip
