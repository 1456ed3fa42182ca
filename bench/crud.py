"""CRUD throughput and list-at-scale latency of a real assistd server, measured side by side in one run.

Starts `python -m assistd serve` on a free 127.0.0.1 port with a temporary data directory, measures, prints a
summary, and always stops the server and removes the directory (on errors, Ctrl-C and SIGTERM too).

1. Throughput: POST /v1/threads/{id}/messages and GET /v1/threads/{id}/messages?limit=20 requests per second,
   each against GET /health of the same server, all with the same client (httpx.AsyncClient, a fixed number of
   requests in flight). The three operations run in rotating rounds so drift hits all of them alike.
   Goal: create/health and list/health >= 0.5. Alongside: the server's CPU time per request (Linux, from
   /proc) and how busy this client process was, which tells a client-bound rate from a server-bound one.
2. Scale: p50 and p90 latency of `client.beta.threads.messages.list(thread_id, limit=20)` (official `openai`
   SDK, one request in flight) on a thread of 100,000 messages and on one of 1,000, alternated in random
   order. The messages are bulk-inserted straight into SQLite, shaped as MessageService.create stores them.
   Goal: p50(100,000) / p50(1,000) <= 1.5.

Usage: python bench/crud.py [--quick]   (--quick: a small smoke run, under 30 s; its big thread is 10,000)
Exit status 0 when the measurements completed, goals met or not; non-zero on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shlex
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import openai
from _server import Server, checked, exit_with, percentile, running_server, verdict
from sqlalchemy import Engine, create_engine, insert, select

from assistd.clock import now
from assistd.ids import new_id
from assistd.services.messages import content_blocks
from assistd.store import tables

PAGE = 20
THROUGHPUT_GOAL = 0.5
SCALE_GOAL = 1.5
SEED_BATCH = 5_000
MIN_LATENCY_SAMPLES = 10


@dataclass(frozen=True)
class Plan:
    """How much work one run does; every loop is bounded by these counts and durations."""

    name: str
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
    name="full",
    concurrency=8,
    warmup_s=1.0,
    phase_s=4.0,
    rounds=3,
    max_requests_per_phase=100_000,
    small_thread=1_000,
    big_thread=100_000,
    latency_warmup=20,
    latency_samples=400,
    latency_budget_s=60.0,
)
QUICK = Plan(
    name="quick",
    concurrency=8,
    warmup_s=0.3,
    phase_s=1.0,
    rounds=1,
    max_requests_per_phase=20_000,
    small_thread=1_000,
    big_thread=10_000,
    latency_warmup=5,
    latency_samples=50,
    latency_budget_s=10.0,
)


@dataclass
class Tally:
    """Requests done by one operation, and the wall, server CPU and client CPU seconds they took."""

    requests: int = 0
    seconds: float = 0.0
    server_cpu_s: float | None = 0.0
    client_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def server_ms_per_request(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s / self.requests * 1000

    @property
    def client_busy(self) -> float:
        """This process's CPU time over wall time (1.0 = one core busy throughout)."""
        return self.client_cpu_s / self.seconds


# ---------------------------------------------------------------------------------------------- throughput


Operation = Callable[[], Awaitable[None]]


async def _run_phase(operation: Operation, plan: Plan, duration_s: float, tally: Tally, server: Server) -> None:
    """Run `operation` with `plan.concurrency` in flight for `duration_s` (or the request cap); add to `tally`."""
    done = 0
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    deadline = started + duration_s

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline and done < plan.max_requests_per_phase:
            await operation()
            done += 1

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    tally.seconds += time.perf_counter() - started
    tally.client_cpu_s += time.process_time() - client_cpu
    tally.requests += done
    server_cpu_now = server.cpu_seconds()
    if server_cpu is None or server_cpu_now is None or tally.server_cpu_s is None:
        tally.server_cpu_s = None
    else:
        tally.server_cpu_s += server_cpu_now - server_cpu


async def measure_throughput(server: Server, plan: Plan) -> dict[str, Tally]:
    """Health, create and list, each warmed up, then measured in rounds whose order rotates."""
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, limits=limits, timeout=30) as client:
        thread_id = checked(await client.post("/v1/threads", json={})).json()["id"]
        messages = f"/v1/threads/{thread_id}/messages"
        body = {"role": "user", "content": "A benchmark message of ordinary length, one sentence or so."}

        async def health() -> None:
            checked(await client.get("/health"))

        async def create() -> None:
            checked(await client.post(messages, json=body))

        async def list_page() -> None:
            checked(await client.get(messages, params={"limit": PAGE}))

        operations: dict[str, Operation] = {"health": health, "create": create, "list": list_page}
        for operation in operations.values():
            await _run_phase(operation, plan, plan.warmup_s, Tally(), server)
        tallies = {name: Tally() for name in operations}
        names = list(operations)
        for round_index in range(plan.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                await _run_phase(operations[name], plan, plan.phase_s, tallies[name], server)
    return tallies


# ---------------------------------------------------------------------------------------------- scale


def seed_thread(engine: Engine, project_id: str, thread_id: str, count: int) -> None:
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
        threads = {size: checked(client.post("/v1/threads", json={})).json()["id"] for size in sizes}
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
    if min(len(values) for values in samples.values()) < MIN_LATENCY_SAMPLES:
        budget = plan.latency_budget_s
        raise RuntimeError(f"the {budget:g} s latency budget ran out before {MIN_LATENCY_SAMPLES} samples")
    return samples


# ---------------------------------------------------------------------------------------------- report


def report(
    plan: Plan, tallies: dict[str, Tally], samples: dict[int, list[float]], seed_s: float, total_s: float
) -> str:
    """The summary table, as printed."""
    small, big = plan.small_thread, plan.big_thread
    p50 = {size: percentile(values, 50) * 1000 for size, values in samples.items()}
    p90 = {size: percentile(values, 90) * 1000 for size, values in samples.items()}
    scale_ratio = p50[big] / p50[small]
    health = tallies["health"]
    lines = [
        "",
        "=" * 100,
        f"assistd CRUD benchmark ({plan.name})",
        f"command : {shlex.join([sys.executable, *sys.argv])}",
        f"machine : {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        "; server and client share it",
        "",
        f"1. Throughput - httpx.AsyncClient, {plan.concurrency} requests in flight, {plan.warmup_s:g} s warm-up each,"
        f" {plan.rounds} x {plan.phase_s:g} s rotating rounds",
        f"   {'operation':<42}{'req/s':>8}{'vs health':>11}{'goal':>8}{'':>6}{'server CPU/req':>16}{'client busy':>13}",
    ]
    for name, label in (
        ("health", "GET /health"),
        ("create", "POST /v1/threads/{id}/messages"),
        ("list", f"GET /v1/threads/{{id}}/messages?limit={PAGE}"),
    ):
        tally = tallies[name]
        ratio = tally.rate / health.rate
        judged = f"{ratio:>11.2f}{'>= ' + str(THROUGHPUT_GOAL):>8}{verdict(ratio >= THROUGHPUT_GOAL):>6}"
        server_ms = tally.server_ms_per_request
        lines.append(
            f"   {label:<42}{tally.rate:>8.0f}{judged if name != 'health' else '':<25}"
            f"{'n/a' if server_ms is None else f'{server_ms:.2f} ms':>16}{tally.client_busy:>12.0%}"
        )
    lines += [
        f"   (list: {tallies['list'].rate * PAGE:.0f} messages/s at {PAGE} per page; client busy near 100% = the"
        " client, not the server, set the rate)",
        "",
        f"2. Scale - openai SDK client.beta.threads.messages.list(thread_id, limit={PAGE}), one in flight,"
        " sizes alternated",
        f"   {'thread size':<18}{'samples':>9}{'p50 ms':>10}{'p90 ms':>10}",
    ]
    for size in (small, big):
        lines.append(f"   {size:<18,}{len(samples[size]):>9}{p50[size]:>10.2f}{p90[size]:>10.2f}")
    lines += [
        f"   p50 ratio {big:,} / {small:,}: {scale_ratio:.2f}   goal <= {SCALE_GOAL}"
        f"   {verdict(scale_ratio <= SCALE_GOAL)}",
        f"   ({small + big:,} messages seeded straight into SQLite in {seed_s:.1f} s)",
        "",
        f"total {total_s:.1f} s",
        "=" * 100,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (under 30 s)")
    plan = QUICK if parser.parse_args().quick else FULL
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Assistants API deprecated
    started = time.perf_counter()
    with running_server() as server:
        print(f"server on {server.base_url}; measuring throughput ...", flush=True)
        tallies = asyncio.run(measure_throughput(server, plan))
        print(f"seeding threads of {plan.small_thread:,} and {plan.big_thread:,} messages ...", flush=True)
        threads, seed_s = seed(server, [plan.small_thread, plan.big_thread])
        print("measuring list latency ...", flush=True)
        samples = measure_list_latency(server, threads, plan)
    print(report(plan, tallies, samples, seed_s, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    exit_with(main)
