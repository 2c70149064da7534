"""Baseline: the schema the pre-Alembic store reached (SQLite PRAGMA user_version 3).

Revision ID: 0001
Revises: (none)

A store written before Alembic is stamped with this revision instead of running it
(dashboard/store/migrate.py); a new store, SQLite or PostgreSQL, is created by it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pseudonym", sa.Text, nullable=False, unique=True),
        sa.Column("sex", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"),
                  nullable=False),  # fmt: skip
        sa.Column("visit_date", sa.Text, nullable=False),
        sa.Column("age", sa.Float),
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("model_name", sa.Text),
        sa.Column("model_version", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("assessment_json", sa.Text, nullable=False),
    )
    op.create_index("visits_by_patient", "visits", ["patient_id", "visit_date"])
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("visit_id", sa.Integer, sa.ForeignKey("visits.id", ondelete="CASCADE"),
                  nullable=False),  # fmt: skip
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("image_path", sa.Text),
        sa.Column("maps_path", sa.Text),
    )
    op.create_table(
        "sign_scores",
        sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"),
                  nullable=False),  # fmt: skip
        sa.Column("sign", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("affected_area", sa.Float, nullable=False),
        sa.Column("uncertainty_low", sa.Float),
        sa.Column("uncertainty_high", sa.Float),
        sa.PrimaryKeyConstraint("photo_id", "sign"),
    )
    op.create_table(
        "easi",
        sa.Column("visit_id", sa.Integer, sa.ForeignKey("visits.id", ondelete="CASCADE"),
                  primary_key=True),  # fmt: skip
        sa.Column("age_group", sa.Text, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("band", sa.Text, nullable=False),
    )
    op.create_table(
        "easi_regions",
        sa.Column("visit_id", sa.Integer, sa.ForeignKey("easi.visit_id", ondelete="CASCADE"),
                  nullable=False),  # fmt: skip
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("area", sa.Integer, nullable=False),
        *(sa.Column(s, sa.Float, nullable=False)
          for s in ("erythema", "papulation", "excoriation", "lichenification")),  # fmt: skip
        sa.Column("score", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("visit_id", "region"),
    )
