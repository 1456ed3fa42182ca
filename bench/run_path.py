"""What one streamed run costs the server itself: a single `assistd serve` process (SQLite, embedded worker)
whose model is the stub upstream (deploy/stub_upstream.py, in a thread of this process: 32 words, no delay), so
nothing but assistd's own work is measured.

Runs go one after another: POST /v1/threads/runs with stream=True (a new thread with one message), read as raw
SSE over httpx to the end. Printed: runs per second, the server's CPU time per run (Linux, from /proc), and the
time from the POST to the first `thread.message.delta` (p50, p90). Goal (issue 15): at most 25 ms of server CPU
per run. A few runs before are not counted.

Usage: python bench/run_path.py [--runs N]   (default 150)
Exit status 0 when every run streamed to its end; non-zero on any error.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _server import checked, exit_with, percentile, running_server, verdict

from deploy import stub_upstream  # importable once _server has put the repository root on the path

CPU_GOAL_MS = 25.0
WARMUP_RUNS = 10
STUB_WORDS = 32


def streamed_run(client: httpx.Client, assistant_id: str) -> float:
    """Seconds from the POST to the first text delta of one streamed run."""
    body = {"assistant_id": assistant_id, "stream": True, "thread": {"messages": [{"role": "user", "content": "Hi"}]}}
    started, first = time.perf_counter(), None
    with client.stream("POST", "/v1/threads/runs", json=body) as response:
        checked(response)
        for line in response.iter_lines():
            if first is None and line.startswith("event: thread.message.delta"):
                first = time.perf_counter() - started
            if line.startswith("event: error"):
                raise RuntimeError("the run's stream reported an error")
    if first is None:
        raise RuntimeError("the run streamed no text")
    return first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=150)
    runs = parser.parse_args().runs
    app = stub_upstream.create_app(STUB_WORDS, 0.0)
    with stub_upstream.serving(app) as url, tempfile.TemporaryDirectory(prefix="assistd-bench-") as scratch:
        models = Path(scratch) / "models.toml"
        models.write_text(stub_upstream.models_file(url))
        with running_server({"ASSISTD_MODELS_FILE": str(models)}) as server:
            headers = {"Authorization": f"Bearer {server.api_key}"}
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
                assistant_id = checked(client.post("/v1/assistants", json={"model": "stub"})).json()["id"]
                for _ in range(WARMUP_RUNS):
                    streamed_run(client, assistant_id)
                cpu, started = server.cpu_seconds(), time.perf_counter()
                firsts = [streamed_run(client, assistant_id) for _ in range(runs)]
                seconds = time.perf_counter() - started
                cpu_now = server.cpu_seconds()
    cpu_ms = None if cpu is None or cpu_now is None else (cpu_now - cpu) / runs * 1000
    print(f"{runs} streamed runs one after another, stub upstream of {STUB_WORDS} words, one server process")
    print(f"  runs/s {runs / seconds:.1f}")
    print(f"  first delta p50 {statistics.median(firsts) * 1000:.1f} ms, p90 {percentile(firsts, 90) * 1000:.1f} ms")
    if cpu_ms is not None:
        print(f"  server CPU per run {cpu_ms:.1f} ms (goal <= {CPU_GOAL_MS:.0f})   {verdict(cpu_ms <= CPU_GOAL_MS)}")
    return 0


if __name__ == "__main__":
    exit_with(main)
