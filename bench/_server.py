"""What the benchmarks share: a real assistd server in a child process, and small reporting helpers.

`running_server()` starts `deploy.localcluster.Server` (`python -m assistd serve` on a free 127.0.0.1 port)
with a temporary data directory, logging warnings only, and always stops it and removes the directory (on
errors, Ctrl-C and, under `exit_with`, SIGTERM). If the bench process dies even by SIGKILL, the server gets
SIGTERM (Linux, PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ is a package at the repository root, not installed

from deploy.localcluster import Server  # noqa: E402


@contextmanager
def running_server(env: dict[str, str] | None = None, cpus: set[int] | None = None) -> Iterator[Server]:
    """A started server (with `env` added to its environment, on `cpus` when given) in a fresh temporary data
    directory, stopped (and the directory removed) on exit.

    On an error inside the block the last lines of the server's log go to stderr before the error propagates
    (an error starting it carries the log itself).
    """
    settings = {"ASSISTD_LOG_LEVEL": "warning", **(env or {})}
    with tempfile.TemporaryDirectory(prefix="assistd-bench-") as data_dir:
        server = Server(Path(data_dir), settings, cpus, stop_with_parent=True)
        try:
            server.start()
            try:
                yield server
            except Exception:
                if tail := server.log_tail():
                    print(f"--- last lines of the server log ---\n{tail}", file=sys.stderr)
                raise
        finally:
            server.stop()


def wait_quiet(server: Server, window_s: float = 0.05, busy_s: float = 0.005, timeout_s: float = 10.0) -> None:
    """Return once the server has used under `busy_s` of CPU in `window_s` (its work after an answer is done,
    as the local engine's evaluating the answer again), so what is timed next does not share the CPUs with it.
    Without CPU figures (not Linux) it waits `window_s`."""
    deadline = time.monotonic() + timeout_s
    before = server.cpu_seconds()
    while True:
        time.sleep(window_s)
        now = server.cpu_seconds()
        if before is None or now is None or now - before < busy_s or time.monotonic() > deadline:
            return
        before = now


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
