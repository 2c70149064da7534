"""The audit trail: who did what, when, to which visit. Append-only (the database's triggers
refuse UPDATE and DELETE on it, see dashboard/store/migrations/versions/v0002_audit.py).

Actions: save and delete are recorded by the store in the same transaction as the change
(dashboard/history.py); view (a patient's history opened), export (a CSV, JSON or PDF
downloaded, or the audit trail itself), sign-in, sign-in-failed, sign-out and the account
changes of `dermsev users` are recorded here. "edit" is reserved: a saved visit cannot be
changed on the page (a correction is a new visit).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, select

from dashboard.store import tables as t
from dashboard.store.engine import write

ACTIONS = ("save", "edit", "export", "view", "delete", "sign-in", "sign-in-failed", "sign-out",
           "user-add", "user-disable", "user-enable", "user-password")  # fmt: skip
COLUMNS = ["id", "at", "actor", "action", "visit_id", "pseudonym", "detail"]


def now() -> str:
    """UTC, ISO 8601 to the second: the trail's clock."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record(engine: Engine, actor: str, action: str, *, visit_id: int | None = None,
           pseudonym: str | None = None, detail: str = "") -> None:  # fmt: skip
    """Append one entry (its own transaction)."""
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {', '.join(ACTIONS)}, got {action!r}")
    with write(engine) as conn:
        conn.execute(t.audit.insert().values(at=now(), actor=actor, action=action,
                                             visit_id=visit_id, pseudonym=pseudonym, detail=detail))  # fmt: skip


def entries(engine: Engine, *, actor: str | None = None, action: str | None = None,
            pseudonym: str | None = None, limit: int | None = None) -> pd.DataFrame:  # fmt: skip
    """The trail, newest first, optionally filtered; columns COLUMNS."""
    a = t.audit
    query = select(*(a.c[c] for c in COLUMNS)).order_by(a.c.id.desc())
    for column, value in (("actor", actor), ("action", action), ("pseudonym", pseudonym)):
        if value:
            query = query.where(a.c[column] == value)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    return pd.DataFrame(rows, columns=COLUMNS).astype({"visit_id": "Int64"})


def to_csv(df: pd.DataFrame) -> bytes:
    """The trail as CSV (UTF-8). Cells a spreadsheet would run as a formula (= + - @ first)
    get a leading apostrophe."""
    safe = df.copy()
    for column in ("actor", "pseudonym", "detail"):
        safe[column] = safe[column].map(
            lambda v: f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
        )
    return safe.to_csv(index=False).encode("utf-8")
