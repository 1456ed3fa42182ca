"""Limits: what they cost and what they protect, measured side by side in one run.

One `assistd serve` (SQLite, embedded worker with `--concurrency` runs at once) whose chat model is the stub
upstream of deploy/stub_upstream.py (`--tokens` words `--delay` s apart: an engine that serves any number of
requests at once, as vLLM would), so what is measured is assistd. Projects and limits are made with the CLI.

1. Overhead: POST /v1/threads/{id}/messages and GET .../messages?limit=20 from a key whose project has request
   and token limits (high enough never to refuse: every request takes from the buckets) against a key whose
   project has none, in rotating rounds, 8 requests in flight. Goal: limited / unlimited >= 0.95.
2. Isolation: key A, whose own limit is `--run-limit` active runs, fires `--runs` streamed runs at once
   (raw httpx: a 429 is seen, not retried). Meanwhile key B, of another project, makes `--probes` streamed
   runs one after another; before the storm B made as many on the idle server. Reported: A's runs completed
   and refused, how long a refusal took, and B's first delta (POST to first `thread.message.delta`) idle and
   under the storm. Goals: A's completed runs never exceed the limit at once (the server's own count, from
   the runs' timestamps), every refusal under 1 s at p95, B's first-delta p95 under the storm <= 2x idle.
   A refusal's time inside the server comes from its access log; `--split-cpus` puts the server on CPU 0 and this
   client and the stub on the others, so that the client's own work does not count against the server.
3. Fairness: project A queues `--runs` runs (not streamed) at once; then project B creates one run. Reported:
   how long B's run waited before a worker started it, against one run's time on the idle server (the goal),
   and how many of A's runs were still queued at that moment (the backlog B did not wait behind).

Usage: python bench/limits.py [--runs 200] [--run-limit 20] [--probes 20] [--tokens 32] [--delay 0.05] [--split-cpus]
Exit status 0 when the measurements completed, goals met or not; non-zero on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _server import Server, checked, exit_with, running_server, verdict
from _server import percentile as _percentile
from load import start_stub

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.localcluster import run_assistd  # noqa: E402
from deploy.stub_upstream import models_file  # noqa: E402

OVERHEAD_GOAL = 0.95
REFUSAL_P95_GOAL_S = 1.0
FIRST_DELTA_GOAL = 2.0
IN_FLIGHT = 8
ROUNDS = 3
PHASE_S = 3.0


def cli(server: Server, *args: str) -> str:
    """`assistd ARGS` on the server's data directory (tables wide enough for whole keys)."""
    return run_assistd({**server.env, "COLUMNS": "200"}, *args, timeout=60).strip()


def project_key(server: Server, name: str, *limits: str) -> str:
    cli(server, "projects", "create", name)
    if limits:
        cli(server, "projects", "limits", name, *limits)
    return cli(server, "keys", "create", "--project", name)


def _client(server: Server, key: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(base_url=server.base_url, headers=headers, limits=limits, timeout=120)


# ---------------------------------------------------------------------------------------------- 1. overhead


async def requests_per_second(client: httpx.AsyncClient, method: str, path: str, body: dict | None) -> float:
    done, deadline = 0, time.perf_counter() + PHASE_S
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            checked(await client.request(method, path, json=body, params=None if body else {"limit": 20}))
            done += 1

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return done / (time.perf_counter() - started)


async def measure_overhead(server: Server, limited_key: str, free_key: str) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, list[float]]] = {"create": {}, "list": {}}
    async with _client(server, limited_key, IN_FLIGHT) as limited, _client(server, free_key, IN_FLIGHT) as free:
        clients = {"limited": limited, "unlimited": free}
        paths = {}
        for name, client in clients.items():
            thread = checked(await client.post("/v1/threads", json={})).json()["id"]
            paths[name] = f"/v1/threads/{thread}/messages"
        body = {"role": "user", "content": "A benchmark message of ordinary length, one sentence or so."}
        for operation, payload, method in (("create", body, "POST"), ("list", None, "GET")):
            for name in clients:  # warm-up
                await requests_per_second(clients[name], method, paths[name], payload)
            for round_index in range(ROUNDS):
                order = list(clients) if round_index % 2 == 0 else list(reversed(clients))
                for name in order:
                    rate = await requests_per_second(clients[name], method, paths[name], payload)
                    rates[operation].setdefault(name, []).append(rate)
    return {op: {name: sum(values) / len(values) for name, values in by.items()} for op, by in rates.items()}


# ---------------------------------------------------------------------------------------------- 2. isolation


@dataclass
class Attempt:
    posted: float = 0.0
    status: int = 0
    answered: float = 0.0  # headers in
    first_delta: float | None = None
    run: dict = field(default_factory=dict)
    error: str | None = None


async def streamed_run(client: httpx.AsyncClient, assistant_id: str, attempt: Attempt) -> None:
    body = {
        "assistant_id": assistant_id,
        "thread": {"messages": [{"role": "user", "content": "Say something."}]},
        "stream": True,
    }
    attempt.posted = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/threads/runs", json=body) as response:
            attempt.status, attempt.answered = response.status_code, time.perf_counter()
            if response.status_code != 200:
                await response.aread()
                return
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "thread.message.delta" and attempt.first_delta is None:
                    attempt.first_delta = time.perf_counter()
                elif line.startswith("data: ") and event in ("thread.run.completed", "thread.run.failed"):
                    attempt.run = json.loads(line[6:])
    except Exception as exc:  # counted as an error
        attempt.error = f"{type(exc).__name__}: {exc}"[:200]


async def probes(client: httpx.AsyncClient, assistant_id: str, count: int) -> list[Attempt]:
    """`count` streamed runs one after another."""
    attempts = []
    for _ in range(count):
        attempt = Attempt()
        await streamed_run(client, assistant_id, attempt)
        attempts.append(attempt)
    return attempts


def most_at_once(runs: list[dict]) -> int:
    """The most runs in progress at the same moment, from the server's own timestamps (whole seconds: a run
    ending in the second another starts counts as overlapping, so this may overstate, never understate)."""
    edges = sorted([(run["started_at"], 1) for run in runs] + [(run["completed_at"] + 1, -1) for run in runs])
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


async def measure_isolation(server: Server, args: argparse.Namespace) -> dict:
    key_a = project_key(server, "storm")
    key_id = next(
        line.split()[1]
        for line in cli(server, "keys", "list", "--project", "storm").splitlines()
        if key_a[:6] in line and key_a[-4:] in line
    )
    cli(server, "projects", "limits", "storm", "--key", key_id, "--runs", str(args.run_limit))
    key_b = project_key(server, "bystander")
    async with _client(server, key_a, args.runs + 8) as storm, _client(server, key_b, 4) as bystander:
        assistant_a = checked(await storm.post("/v1/assistants", json={"model": "stub"})).json()["id"]
        assistant_b = checked(await bystander.post("/v1/assistants", json={"model": "stub"})).json()["id"]
        await probes(bystander, assistant_b, 3)  # warm-up
        idle = await probes(bystander, assistant_b, args.probes)
        attempts = [Attempt() for _ in range(args.runs)]
        storm_task = asyncio.gather(*(streamed_run(storm, assistant_a, attempt) for attempt in attempts))
        await asyncio.sleep(0.05)  # the storm is under way
        loaded = await probes(bystander, assistant_b, args.probes)
        await storm_task
    return {"idle": idle, "loaded": loaded, "storm": attempts}


def refusal_times_in_server(server: Server) -> list[float]:
    """The milliseconds the server's access log gives each 429 to a run creation."""
    pattern = re.compile(r"POST /v1/threads/runs 429 ([0-9.]+)ms")
    return [float(match[1]) for match in pattern.finditer(server.log_path.read_text(errors="replace"))]


# ---------------------------------------------------------------------------------------------- 3. fairness


async def wait_started(client: httpx.AsyncClient, run: dict, deadline: float) -> float:
    """Poll until the run leaves `queued`; the time it did (perf_counter)."""
    path = f"/v1/threads/{run['thread_id']}/runs/{run['id']}"
    while time.perf_counter() < deadline:
        if checked(await client.get(path)).json()["status"] != "queued":
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise RuntimeError(f"run {run['id']} still queued")


async def measure_fairness(server: Server, args: argparse.Namespace) -> dict[str, float]:
    """Project A queues `--runs` runs; project B then creates one. How long B's waited, against how long one
    run takes on the idle server."""
    key_a, key_b = project_key(server, "backlog"), project_key(server, "latecomer")
    body = {"thread": {"messages": [{"role": "user", "content": "Say something."}]}}
    async with _client(server, key_a, 16) as backlog, _client(server, key_b, 2) as latecomer:
        assistant_a = checked(await backlog.post("/v1/assistants", json={"model": "stub"})).json()["id"]
        assistant_b = checked(await latecomer.post("/v1/assistants", json={"model": "stub"})).json()["id"]
        one = [a for a in await probes(latecomer, assistant_b, 3) if a.run.get("status") == "completed"]
        run_seconds = max(a.run["completed_at"] - a.run["started_at"] for a in one) if one else float("nan")
        measured = [(a.first_delta or a.posted) - a.posted for a in one]
        queued = await asyncio.gather(
            *(backlog.post("/v1/threads/runs", json={**body, "assistant_id": assistant_a}) for _ in range(args.runs))
        )
        assert all(response.status_code == 200 for response in queued)
        created = time.perf_counter()
        run = checked(await latecomer.post("/v1/threads/runs", json={**body, "assistant_id": assistant_b})).json()
        started = await wait_started(latecomer, run, created + 600)
        pending = [r.json() for r in queued]
        still_queued = 0
        for item in pending:
            path = f"/v1/threads/{item['thread_id']}/runs/{item['id']}"
            still_queued += checked(await backlog.get(path)).json()["status"] == "queued"
        for item in pending:  # let the backlog go
            with contextlib.suppress(RuntimeError):
                checked(await backlog.post(f"/v1/threads/{item['thread_id']}/runs/{item['id']}/cancel"))
    return {
        "waited": started - created,
        "run_seconds": max(run_seconds, args.tokens * args.delay),
        "first_delta": max(measured) if measured else float("nan"),
        "still_queued": still_queued,
    }


def percentile(values: list[float], q: int) -> float:
    return _percentile(values, q) if len(values) > 1 else (values[0] if values else float("nan"))


def first_delta_ms(attempts: list[Attempt]) -> list[float]:
    return [(a.first_delta - a.posted) * 1000 for a in attempts if a.first_delta is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--run-limit", type=int, default=20)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64, help="ASSISTD_WORKER_CONCURRENCY")
    parser.add_argument(
        "--split-cpus",
        action="store_true",
        help="the server on CPU 0; this client and the stub upstream on the others (so the client's own work does "
        "not delay the server's answers)",
    )
    args = parser.parse_args()
    server_cpus = None
    if args.split_cpus:
        server_cpus = {0}
        os.sched_setaffinity(0, os.sched_getaffinity(0) - server_cpus)  # the stub, started next, inherits it
    stub, stub_url = start_stub(args.tokens, args.delay)
    try:
        handle, name = tempfile.mkstemp(prefix="assistd-limits-", suffix=".toml")
        os.close(handle)
        models = Path(name)
        models.write_text(models_file(f"{stub_url}/v1"))
        env = {
            "ASSISTD_MODELS_FILE": str(models),
            "ASSISTD_WORKER_CONCURRENCY": str(args.concurrency),
            "ASSISTD_LOG_LEVEL": "info",  # the access log gives each refusal's time inside the server
        }
        try:
            with running_server(env, server_cpus) as server:
                limited = project_key(server, "limited", "--rpm", "1000000000", "--tpm", "1000000000")
                free = project_key(server, "unlimited", "--rpm", "0", "--tpm", "0")
                overhead = asyncio.run(measure_overhead(server, limited, free))
                isolation = asyncio.run(measure_isolation(server, args))
                isolation["server_refusal_ms"] = refusal_times_in_server(server)
                fairness = asyncio.run(measure_fairness(server, args))
        finally:
            models.unlink(missing_ok=True)
    finally:
        stub.terminate()
        stub.wait(timeout=10)

    print(f"assistd limits benchmark — {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"stub upstream: {args.tokens} words {args.delay} s apart; worker concurrency {args.concurrency}")
    placement = "server on CPU 0, client and stub on the others" if args.split_cpus else "all on every CPU"
    print(f"CPUs: {placement}\n")
    print("1. overhead of the limits (requests/s, 8 in flight, mean of 3 rounds)")
    for operation, rates in overhead.items():
        ratio = rates["limited"] / rates["unlimited"]
        print(
            f"   {operation:7s} limited {rates['limited']:7.1f}/s  unlimited {rates['unlimited']:7.1f}/s  "
            f"ratio {ratio:.3f}  goal >= {OVERHEAD_GOAL}  {verdict(ratio >= OVERHEAD_GOAL)}"
        )
    storm = isolation["storm"]
    completed = [a for a in storm if a.status == 200 and a.run.get("status") == "completed"]
    refused = [a for a in storm if a.status == 429]
    errors = [a for a in storm if a.error or a.status not in (200, 429)]
    refusal_ms = [(a.answered - a.posted) * 1000 for a in refused]
    peak = most_at_once([a.run for a in completed])
    print(f"\n2. isolation: key A fires {args.runs} streamed runs at once (its limit: {args.run_limit} active runs)")
    print(f"   A: {len(completed)} completed, {len(refused)} refused (429), {len(errors)} errors")
    print(f"   A: most runs in progress at once (server timestamps) {peak}  {verdict(peak <= args.run_limit)}")
    if refusal_ms:
        p95 = percentile(refusal_ms, 95)
        print(
            f"   A: a refusal took p50 {percentile(refusal_ms, 50):.0f} ms, p95 {p95:.0f} ms  "
            f"goal p95 < {REFUSAL_P95_GOAL_S * 1000:.0f} ms  {verdict(p95 < REFUSAL_P95_GOAL_S * 1000)}"
        )
        inside = isolation["server_refusal_ms"]
        if inside:
            print(
                f"   A: of which inside the server (its access log, from the app's first look at the request): "
                f"p50 {percentile(inside, 50):.1f} ms, p95 {percentile(inside, 95):.1f} ms"
            )
    idle, loaded = first_delta_ms(isolation["idle"]), first_delta_ms(isolation["loaded"])
    idle_p95, loaded_p95 = percentile(idle, 95), percentile(loaded, 95)
    ratio = loaded_p95 / idle_p95
    print(
        f"   B (another project) first delta: idle p50 {percentile(idle, 50):.0f} ms p95 {idle_p95:.0f} ms; "
        f"during A's storm p50 {percentile(loaded, 50):.0f} ms p95 {loaded_p95:.0f} ms"
    )
    print(f"   B: p95 storm / idle {ratio:.2f}  goal <= {FIRST_DELTA_GOAL}  {verdict(ratio <= FIRST_DELTA_GOAL)}")
    waited, one_run = fairness["waited"], fairness["run_seconds"]
    print(f"\n3. fairness: project A queues {args.runs} runs, then project B creates one")
    print(
        f"   B's run started after {waited:.2f} s; one run takes {one_run:.2f} s on the idle server; "
        f"{fairness['still_queued']} of A's runs were still queued then  {verdict(waited <= one_run)}"
    )
    if errors:
        for attempt in errors[:5]:
            print(f"   error: {attempt.status} {attempt.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    exit_with(main)
