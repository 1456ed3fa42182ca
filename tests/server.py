"""A real assistd server in a child process, on a free 127.0.0.1 port, with its own data directory.

With ASSISTD_TEST_BACKEND=postgres every server of the suite runs scaled out: its own database on one shared
PostgreSQL (with pgvector), run events through one shared Redis, and an `assistd worker` process beside the
API process, which runs no worker of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.localcluster import Postgres, Redis, free_port, wait_healthy

BACKEND = os.environ.get("ASSISTD_TEST_BACKEND", "sqlite")
_services: tuple[Postgres, Redis] | None = None
_databases: dict[Path, str] = {}


def scaled_out() -> bool:
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
    result = subprocess.run(
        [sys.executable, "-m", "assistd", *args],
        env={**os.environ, "ASSISTD_DATA_DIR": str(data_dir), "COLUMNS": "200", **backend_env(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"assistd {' '.join(args)} failed: {result.stderr}")
    return result.stdout


class ServerProcess:
    """`assistd serve`, plus an `assistd worker` when the suite runs scaled out."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None, **settings: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.worker_log_path = data_dir / "worker.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "ASSISTD_DATA_DIR": str(data_dir),
            "ASSISTD_HOST": "127.0.0.1",
            "ASSISTD_PORT": str(self.port),
            **backend_env(data_dir),
            **{f"ASSISTD_{name.upper()}": value for name, value in settings.items()},
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def _spawn(self, command: str, log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "assistd", command], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start(self, timeout: float = 60) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = self._spawn("serve", self.log_path)
        try:
            wait_healthy(self.base_url, timeout, self.process)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log_path.read_text()}") from None
        if self.env.get("ASSISTD_EMBEDDED_WORKER") == "false":
            self.worker = self._spawn("worker", self.worker_log_path)
        return self

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        return [process for process in (self.process, self.worker) if process and process.poll() is None]

    def stop(self) -> None:
        for process in self._processes():
            process.send_signal(signal.SIGINT)
        for process in self._processes():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def terminate(self, timeout: float = 60) -> float:
        """SIGTERM, as a service manager stops a process; the seconds until the server (and its worker) exited.
        Raises subprocess.TimeoutExpired after `timeout` seconds."""
        started = time.monotonic()
        processes = self._processes()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=max(0.0, started + timeout - time.monotonic()))
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash or power cut would end it."""
        for process in self._processes():
            process.kill()
            process.wait()

    @property
    def database_url(self) -> str:
        return self.env.get("ASSISTD_DATABASE_URL") or f"sqlite+aiosqlite:///{self.data_dir / 'assistd.db'}"

    def log_text(self) -> str:
        """The server's log, and its worker's when there is one."""
        logs = [self.log_path] + ([self.worker_log_path] if self.worker_log_path.exists() else [])
        return "".join(path.read_text(errors="replace") for path in logs)
