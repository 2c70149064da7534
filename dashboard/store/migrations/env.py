"""Alembic's entry point: runs the revisions on the connection `dashboard.store.migrate` hands
over (config.attributes["connection"]), inside its transaction. There is no alembic.ini: the
store migrates itself when it opens (see migrate.py)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
