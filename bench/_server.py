"""What the benchmarks share: a real assistd server in a child process, and small reporting helpers.

`running_server()` starts `python -m assistd serve` on a free 127.0.0.1 port with a temporary data directory
and always stops it and removes the directory (on errors, Ctrl-C and, under `exit_with`, SIGTERM).
If the bench process dies even by SIGKILL, the server gets SIGTERM (Linux, PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HOST = "127.0.0.1"


def die_with_parent() -> None:
    """In the server child (Linux): get SIGTERM if the bench dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """An assistd server in a child process on a free 127.0.0.1 port, logging to a file in its data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, cpus: set[int] | None = None) -> None:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        self.data_dir = data_dir
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = data_dir / "server.log"
        self.extra_env = env or {}
        self.cpus = cpus  # the CPUs the server may run on (Linux); None: any
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> None:
        """Launch `python -m assistd serve` and wait until /health answers."""
        env = {
            **os.environ,
            "ASSISTD_DATA_DIR": str(self.data_dir),
            "ASSISTD_HOST": HOST,
            "ASSISTD_PORT": str(self.port),
            "ASSISTD_LOG_LEVEL": "warning",
            **self.extra_env,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "assistd", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._prepare_child,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early with status {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer /health within {timeout_s:.0f} s")

    def _prepare_child(self) -> None:
        die_with_parent()
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)

    def stop(self) -> None:
        """SIGINT (graceful), then SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far, where /proc has it."""
        if self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def api_key(self) -> str:
        """The first key that `serve` wrote for the `default` project."""
        return (self.data_dir / "api_key").read_text().splitlines()[0].strip()

    @property
    def database_path(self) -> Path:
        return self.data_dir / "assistd.db"

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_server(env: dict[str, str] | None = None, cpus: set[int] | None = None) -> Iterator[Server]:
    """A started server (with `env` added to its environment, on `cpus` when given) in a fresh temporary data
    directory, stopped (and the directory removed) on exit.

    On an error inside the block the last lines of the server's log go to stderr before the error propagates.
    """
    with tempfile.TemporaryDirectory(prefix="assistd-bench-") as data_dir:
        server = Server(Path(data_dir), env, cpus)
        try:
            server.start()
            yield server
        except Exception:
            tail = server.log_tail()
            if tail:
                print(f"--- last lines of the server log ---\n{tail}", file=sys.stderr)
            raise
        finally:
            server.stop()


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or an error naming the request and the start of the body."""
    if response.status_code >= 400:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url.path} -> {response.status_code}: {response.text[:300]}")
    return response


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) of `values`."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM is taken as Ctrl-C, so the server is still stopped and its data directory removed.

    Raised here rather than re-sent as SIGINT: a background job starts with SIGINT ignored.
    """
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Handle SIGTERM as Ctrl-C (KeyboardInterrupt), so `running_server()` still cleans up."""
    signal.signal(signal.SIGTERM, _interrupt)


def exit_with(main: Callable[[], int]) -> None:
    """Run a benchmark's `main` and exit with its status; Ctrl-C or SIGTERM exits 130 (servers already stopped)."""
    stop_on_sigterm()
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the server was stopped", file=sys.stderr)
        sys.exit(130)
