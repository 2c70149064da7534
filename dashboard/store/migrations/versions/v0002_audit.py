"""Who saved a visit with which weights, and the append-only audit trail.

Revision ID: 0002
Revises: 0001

visits gains model_hash (sha256 of the weights file) and assessor (the user who saved it;
NULL for visits saved before accounts existed). audit is append-only: triggers refuse every
UPDATE and DELETE (and, on PostgreSQL, TRUNCATE), whoever sends them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REFUSAL = "the audit trail is append-only"


def upgrade() -> None:
    op.add_column("visits", sa.Column("model_hash", sa.Text))
    op.add_column("visits", sa.Column("assessor", sa.Text))
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("visit_id", sa.Integer),
        sa.Column("pseudonym", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("audit_by_time", "audit", ["at"])
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit "
                       f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END")  # fmt: skip
    else:
        op.execute("CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$")  # fmt: skip
        op.execute("CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
                   "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")  # fmt: skip
        op.execute("CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")  # fmt: skip
