"""The test suite's real assistd servers: `deploy.localcluster.Server` with settings as keyword arguments and
the store on the suite's backend.

With ASSISTD_TEST_BACKEND=postgres every server of the suite runs scaled out: its own database on one shared
PostgreSQL (with pgvector), run events through one shared Redis, and an `assistd worker` process beside the
API process, which runs no worker of its own. Also here: the suite's CLI runner and direct reads and writes of
a server's store behind its back.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.localcluster import Postgres, Redis, Server, free_port, run_assistd

__all__ = ["ServerProcess", "backend_env", "execute", "free_port", "query_value", "run_cli", "scaled_out"]

BACKEND = os.environ.get("ASSISTD_TEST_BACKEND", "sqlite")
_services: tuple[Postgres, Redis] | None = None
_databases: dict[Path, str] = {}


def scaled_out() -> bool:
    """Whether the suite runs on PostgreSQL and Redis with separate worker processes."""
    return BACKEND == "postgres"


def shared_services() -> tuple[Postgres, Redis]:
    """One PostgreSQL and one Redis for the whole test session, started on first use."""
    global _services
    if _services is None:
        root = Path(tempfile.mkdtemp(prefix="assistd-services-"))
        postgres, redis = Postgres(root / "pg").start(), Redis().start()
        atexit.register(shutil.rmtree, root, ignore_errors=True)  # runs last
        atexit.register(redis.stop)
        atexit.register(postgres.stop)
        _services = postgres, redis
    return _services


def backend_env(data_dir: Path) -> dict[str, str]:
    """The settings that put the store of `data_dir` on the test backend (none for SQLite)."""
    if not scaled_out():
        return {}
    postgres, redis = shared_services()
    key = data_dir.resolve()
    if key not in _databases:
        name = "t_" + hashlib.sha1(str(key).encode()).hexdigest()[:16]
        _databases[key] = postgres.create_database(name)
    return {"ASSISTD_DATABASE_URL": _databases[key], "ASSISTD_REDIS_URL": redis.url, "ASSISTD_EMBEDDED_WORKER": "false"}


def query_value(url: str, sql: str):
    """The first column of the first row of `sql`, read straight from the store (behind the server's back)."""

    async def read():
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.scalar(text(sql))
        finally:
            await engine.dispose()

    return asyncio.run(read())


def execute(url: str, sql: str) -> None:
    """Run and commit `sql` straight on the store (behind the server's back), as an earlier version might have."""

    async def write():
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(write())


def run_cli(data_dir: Path, *args: str) -> str:
    """Run `assistd ARGS` against the data directory; returns stdout (raises on failure)."""
    env = {**os.environ, "ASSISTD_DATA_DIR": str(data_dir), "COLUMNS": "200", **backend_env(data_dir)}
    return run_assistd(env, *args, timeout=60)


class ServerProcess(Server):
    """`assistd serve` with `settings` (log_level="debug": ASSISTD_LOG_LEVEL) and `extra_env` on the suite's
    backend, plus an `assistd worker` when the suite runs scaled out."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None, **settings: str) -> None:
        env = {
            **backend_env(data_dir),
            **{f"ASSISTD_{name.upper()}": value for name, value in settings.items()},
            **(extra_env or {}),
        }
        super().__init__(data_dir, env)
