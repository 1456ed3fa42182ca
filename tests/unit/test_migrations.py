"""The migrations build exactly the schema tables.py declares, and run again harmlessly."""

from __future__ import annotations

from alembic import command

from assistd.store.migrate import alembic_config, upgrade


def test_migrations_match_the_tables(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    upgrade(url)
    upgrade(url)
    command.check(alembic_config(url))  # raises if tables.py and the migrations disagree


def test_assistants_installed_from_a_preset_keep_their_app(tmp_path) -> None:
    """Migration 0009: an assistant whose metadata named a preset (how earlier versions marked one), and its run
    under way, name it in their `app` column; other assistants, finished runs and unknown names get none."""
    import sqlite3

    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url, "0008")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO projects (id, name, created_at) VALUES ('proj_1', 'p', 0)")
        for assistant_id, metadata in [
            ("asst_sum", '{"assistd_app": "summarizer"}'),
            ("asst_odd", '{"assistd_app": "no-such-app"}'),
            ("asst_plain", "{}"),
        ]:
            db.execute(
                "INSERT INTO assistants (id, project_id, created_at, model, tools, metadata) "
                "VALUES (?, 'proj_1', 0, 'm', '[]', ?)",
                (assistant_id, metadata),
            )
        for run_id, status in [("run_active", "queued"), ("run_done", "completed")]:
            db.execute(
                "INSERT INTO runs (id, project_id, thread_id, assistant_id, created_at, status, model, instructions, "
                "tools, metadata, parallel_tool_calls, truncation_strategy, attempts) "
                "VALUES (?, 'proj_1', 'thread_1', 'asst_sum', 0, ?, 'm', '', '[]', '{}', 1, '{}', 0)",
                (run_id, status),
            )
    upgrade(url)
    with sqlite3.connect(path) as db:
        assert dict(db.execute("SELECT id, app FROM assistants")) == {
            "asst_sum": "summarizer",
            "asst_odd": None,
            "asst_plain": None,
        }
        assert dict(db.execute("SELECT id, app FROM runs")) == {"run_active": "summarizer", "run_done": None}
