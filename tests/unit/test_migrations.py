"""The migrations build exactly the schema tables.py declares, and run again harmlessly."""

from __future__ import annotations

from alembic import command

from assistd.store.migrate import alembic_config, upgrade


def test_migrations_match_the_tables(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    upgrade(url)
    upgrade(url)
    command.check(alembic_config(url))  # raises if tables.py and the migrations disagree
