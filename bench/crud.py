"""CRUD throughput and list-at-scale latency of a real assistd server, measured side by side in one run.

Starts `python -m assistd serve` on a free 127.0.0.1 port with a temporary data directory, measures, prints a
summary, and always stops the server and removes the directory (on errors, Ctrl-C and SIGTERM too).

1. Throughput: POST /v1/threads/{id}/messages and GET /v1/threads/{id}/messages?limit=20 requests per second,
   each against GET /health of the same server, all with the same client (httpx.AsyncClient, a fixed number of
   requests in flight). The three operations run in alternating rounds so drift hits all of them.
   Goal: create/health and list/health >= 0.5.
2. Scale: p50 and p90 latency of `client.beta.threads.messages.list(thread_id, limit=20)` (official `openai`
   SDK, one request in flight) on a thread of 100,000 messages and on one of 1,000, alternated in random
   order. The messages are bulk-inserted straight into SQLite, shaped as MessageService.create stores them.
   Goal: p50(100,000) / p50(1,000) <= 1.5.

Usage: python bench/crud.py [--quick]   (--quick: a small smoke run, under 30 s)
Exit status 0 when the measurements completed (goals missed or not); non-zero on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import platform
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
from sqlalchemy import create_engine, insert, select

from assistd.services.clock import now
from assistd.services.messages import content_blocks
from assistd.store import tables
from assistd.store.ids import new_id

HOST = "127.0.0.1"
PAGE = 20
THROUGHPUT_GOAL = 0.5
SCALE_GOAL = 1.5
SEED_BATCH = 5_000


@dataclass(frozen=True)
class Plan:
    """How much work one run does; every loop is bounded by these counts and durations."""

    concurrency: int
    warmup_s: float
    phase_s: float
    rounds: int
    max_requests_per_phase: int
    small_thread: int
    big_thread: int
    latency_warmup: int
    latency_samples: int
    latency_budget_s: float


FULL = Plan(
    concurrency=8, warmup_s=1.0, phase_s=4.0, rounds=3, max_requests_per_phase=100_000,
    small_thread=1_000, big_thread=100_000, latency_warmup=20, latency_samples=400, latency_budget_s=60.0,
)
QUICK = Plan(
    concurrency=8, warmup_s=0.3, phase_s=1.0, rounds=1, max_requests_per_phase=20_000,
    small_thread=1_000, big_thread=10_000, latency_warmup=5, latency_samples=50, latency_budget_s=10.0,
)


def _die_with_parent() -> None:
    """In the server child (Linux): get SIGTERM if the bench dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """An assistd server in a child process on a free 127.0.0.1 port, logging to a file in its data directory."""

    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        self.data_dir = data_dir
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> None:
        """Launch `python -m assistd serve` and wait until /health answers."""
        env = {
            **os.environ,
            "ASSISTD_DATA_DIR": str(self.data_dir),
            "ASSISTD_HOST": HOST,
            "ASSISTD_PORT": str(self.port),
            "ASSISTD_LOG_LEVEL": "warning",
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "assistd", "serve"],
                env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
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


def _ok(response: httpx.Response) -> httpx.Response:
    """The response, or an error naming the request and the start of the body."""
    if response.status_code >= 400:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url.path} -> {response.status_code}: {response.text[:300]}")
    return response


async def _request(client: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> None:
    """One request that must succeed; the body is read in full, as a real client would."""
    _ok(await client.request(method, url, **kwargs))


# ---------------------------------------------------------------------------------------------- throughput


Operation = Callable[[], Awaitable[object]]


async def _run_phase(operation: Operation, plan: Plan, duration_s: float) -> tuple[int, float]:
    """Run `operation` with `plan.concurrency` in flight for `duration_s` (or the request cap); (count, seconds)."""
    done = 0
    started = time.perf_counter()
    deadline = started + duration_s

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline and done < plan.max_requests_per_phase:
            await operation()
            done += 1

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return done, time.perf_counter() - started


async def measure_throughput(base_url: str, api_key: str, plan: Plan) -> dict[str, float]:
    """Requests per second of health, create and list, each warmed up, then measured in rotating rounds."""
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30) as client:
        thread_id = _ok(await client.post("/v1/threads", json={})).json()["id"]
        messages = f"/v1/threads/{thread_id}/messages"
        body = {"role": "user", "content": "A benchmark message of ordinary length, one sentence or so."}
        operations: dict[str, Operation] = {
            "health": lambda: _request(client, "GET", "/health"),
            "create": lambda: _request(client, "POST", messages, json=body),
            "list": lambda: _request(client, "GET", messages, params={"limit": PAGE}),
        }
        for operation in operations.values():
            await _run_phase(operation, plan, plan.warmup_s)
        totals = {name: [0, 0.0] for name in operations}
        names = list(operations)
        for round_index in range(plan.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                count, seconds = await _run_phase(operations[name], plan, plan.phase_s)
                totals[name][0] += count
                totals[name][1] += seconds
    return {name: count / seconds for name, (count, seconds) in totals.items()}


# ---------------------------------------------------------------------------------------------- scale


def seed_thread(engine, project_id: str, thread_id: str, count: int) -> None:  # noqa: ANN001 - sync Engine
    """Bulk-insert `count` user messages into the thread, one transaction per batch, as the service stores them."""
    for start in range(0, count, SEED_BATCH):
        created_at = now()
        rows = [
            {
                "id": new_id("message"),
                "project_id": project_id,
                "thread_id": thread_id,
                "created_at": created_at,
                "role": "user",
                "content": content_blocks(f"Seeded message {index}."),
                "attachments": None,
                "metadata": {},
                "status": "completed",
            }
            for index in range(start, min(start + SEED_BATCH, count))
        ]
        with engine.begin() as connection:
            connection.execute(insert(tables.Message), rows)


def seed(server: Server, sizes: list[int]) -> tuple[dict[int, str], float]:
    """One thread per size, made over HTTP, then filled directly in SQLite; ({size: thread_id}, seconds)."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        threads = {size: _ok(client.post("/v1/threads", json={})).json()["id"] for size in sizes}
    started = time.perf_counter()
    engine = create_engine(f"sqlite:///{server.database_path}", connect_args={"timeout": 30})
    try:
        with engine.connect() as connection:
            project_id = connection.scalar(select(tables.Project.id).where(tables.Project.name == "default"))
        for size, thread_id in threads.items():
            seed_thread(engine, project_id, thread_id, size)
    finally:
        engine.dispose()
    return threads, time.perf_counter() - started


def measure_list_latency(server: Server, threads: dict[int, str], plan: Plan) -> dict[int, list[float]]:
    """Seconds per SDK `messages.list(limit=20)` call, per thread size; sizes alternate in a shuffled order."""
    client = openai.OpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1", max_retries=0, timeout=30)
    samples: dict[int, list[float]] = {size: [] for size in threads}
    rng = random.Random(1)
    deadline = time.monotonic() + plan.latency_budget_s
    order = list(threads.items())
    try:
        for iteration in range(plan.latency_warmup + plan.latency_samples):
            if time.monotonic() > deadline:
                break
            rng.shuffle(order)
            for size, thread_id in order:
                started = time.perf_counter()
                page = client.beta.threads.messages.list(thread_id, limit=PAGE)
                elapsed = time.perf_counter() - started
                if len(page.data) != PAGE or not page.has_more:
                    raise RuntimeError(f"list of a {size}-message thread returned {len(page.data)} messages")
                if iteration >= plan.latency_warmup:
                    samples[size].append(elapsed)
    finally:
        client.close()
    return samples


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) of `values`."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# ---------------------------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(plan: Plan, rates: dict[str, float], samples: dict[int, list[float]], seed_s: float, total_s: float) -> str:
    """The summary table, as printed."""
    small, big = plan.small_thread, plan.big_thread
    p50 = {size: percentile(values, 50) * 1000 for size, values in samples.items()}
    p90 = {size: percentile(values, 90) * 1000 for size, values in samples.items()}
    scale_ratio = p50[big] / p50[small]
    lines = [
        "",
        "=" * 88,
        f"assistd CRUD benchmark ({'quick' if plan is QUICK else 'full'})",
        f"command : {shlex.join([sys.executable, *sys.argv])}",
        f"machine : {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f"; server and client share the machine",
        "",
        f"1. Throughput - httpx.AsyncClient, {plan.concurrency} requests in flight, {plan.warmup_s:g} s warm-up each,"
        f" {plan.rounds} x {plan.phase_s:g} s rotating rounds",
        f"   {'operation':<44}{'req/s':>10}{'vs health':>11}{'goal':>9}{'':>7}",
        f"   {'GET /health':<44}{rates['health']:>10.0f}{'':>11}{'':>9}",
    ]
    for name, label in (
        ("create", "POST /v1/threads/{id}/messages"),
        ("list", f"GET /v1/threads/{{id}}/messages?limit={PAGE}"),
    ):
        ratio = rates[name] / rates["health"]
        lines.append(
            f"   {label:<44}{rates[name]:>10.0f}{ratio:>11.2f}{'>= ' + str(THROUGHPUT_GOAL):>9}"
            f"{verdict(ratio >= THROUGHPUT_GOAL):>7}"
        )
    lines += [
        f"   (list: {rates['list'] * PAGE:.0f} messages/s at {PAGE} per page)",
        "",
        f"2. Scale - openai SDK client.beta.threads.messages.list(thread_id, limit={PAGE}), one in flight,"
        f" sizes alternated",
        f"   {'thread size':<18}{'samples':>9}{'p50 ms':>10}{'p90 ms':>10}",
    ]
    for size in (small, big):
        lines.append(f"   {size:<18,}{len(samples[size]):>9}{p50[size]:>10.2f}{p90[size]:>10.2f}")
    lines += [
        f"   p50 ratio {big:,} / {small:,}: {scale_ratio:.2f}   goal <= {SCALE_GOAL}   {verdict(scale_ratio <= SCALE_GOAL)}",
        f"   ({small + big:,} messages seeded straight into SQLite in {seed_s:.1f} s)",
        "",
        f"total {total_s:.1f} s",
        "=" * 88,
    ]
    return "\n".join(lines)


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM ends the bench like Ctrl-C does, so the server is still stopped."""
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (under 30 s)")
    plan = QUICK if parser.parse_args().quick else FULL
    signal.signal(signal.SIGTERM, _terminate)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Assistants API deprecated
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="assistd-bench-") as data_dir:
        server = Server(Path(data_dir))
        try:
            server.start()
            print(f"server on {server.base_url}; measuring throughput ...", flush=True)
            rates = asyncio.run(measure_throughput(server.base_url, server.api_key, plan))
            print(f"seeding threads of {plan.small_thread:,} and {plan.big_thread:,} messages ...", flush=True)
            threads, seed_s = seed(server, [plan.small_thread, plan.big_thread])
            print("measuring list latency ...", flush=True)
            samples = measure_list_latency(server, threads, plan)
        except BaseException:
            tail = server.log_tail()
            if tail:
                print(f"--- last lines of the server log ---\n{tail}", file=sys.stderr)
            raise
        finally:
            server.stop()
    print(report(plan, rates, samples, seed_s, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
