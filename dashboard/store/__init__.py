"""The patient store's database: engine (SQLite in WAL mode or PostgreSQL), tables, migrations.

`dashboard.history.HistoryStore` is the store the page uses; this package is what it stands on:
  engine.py      which database ($DERMSEV_DATABASE_URL, else SQLite in the data folder), how
                 connections are set up, write transactions
  tables.py      the tables as SQLAlchemy Core (the schema at the newest migration)
  migrate.py     bring any store up to date: Alembic revisions in migrations/versions, after
                 the pre-Alembic SQLite stores (PRAGMA user_version 1-3) are brought to version 3
"""
