"""Assistants runs through a real assistd server against llama-cpp-python in-process, side by side in one run.

Starts `python -m assistd serve` on a free 127.0.0.1 port with a temporary data directory (stopped and removed
at the end, on errors, Ctrl-C and SIGTERM too) and builds the same engine in this process, exactly as
bench/generation.py does (its RawModel: the same GGUF, n_ctx and sampling, its evaluated prefix kept, its fastest
thread count, the never-empty rule and token counter). Server and raw runs alternate and never overlap: after
each run the bench waits until the server is quiet (its engine evaluates the answer again).

Every server run is a fresh thread holding one user message, run by one assistant (fixed instructions,
smollm2-135m-instruct) with temperature 0, streamed as raw SSE over httpx (POST /v1/threads/{id}/runs with
stream=True); the client notes when each event arrives. The raw side generates from the prompt the executor
builds for that run (system = the instructions, then the user message), rendered by the engine's render_chat.

1. Decode speed: run tokens/s = (completion tokens of the final run's usage - 1) / (time from the first
   `thread.message.delta` to the last), against the raw rate on the same prompt (tokens after the first / time
   from the first piece to the last). Goal: median of the paired server/raw ratios >= 0.95. Greedy outputs are
   compared (text and token count).
2. First delta: from the POST that creates the run to the first `thread.message.delta`, minus the raw time to
   the first token of the same prompt, as the median of alternated pairs. Goal: <= +15 ms. The events on the
   way split the run path into: POST -> thread.run.created (HTTP, create transaction), -> thread.run.in_progress
   (worker wake-up, claim and move transactions), -> thread.message.created (thread read, tokenization, the
   engine's prompt processing and first token, the message + step transaction), -> first delta.
3. Concurrent runs: N threads, N streamed runs created at once (httpx.AsyncClient), max_completion_tokens 16.
   All must end completed (or incomplete: cut off by max_completion_tokens) without errors. Queue wait = from the
   POST to the arrival of thread.run.in_progress (run.started_at - run.created_at is only in whole seconds); the
   worker runs ASSISTD_WORKER_CONCURRENCY (default 4) at once, and those wait their turn in the engine's FIFO.

Usage: python bench/runs.py [--quick]   (--quick: a small smoke run, under 60 s on an idle machine)
Exit status 0 when the measurements completed, goals met or not; non-zero on any error (a failed run too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from _server import Server, checked, exit_with, percentile, running_server, verdict, wait_quiet
from generation import BUSY_OTHERS_CPUS, CpuWatch, RawModel, Run

from assistd.engines.registry import DEFAULT_TEXT_MODEL

MODEL = DEFAULT_TEXT_MODEL
SPEED_GOAL = 0.95
FIRST_DELTA_GOAL_MS = 15.0
MIN_PAIRS = 3
WARMUP_TOKENS = 8
FLOOR_SAMPLES = 20
INSTRUCTIONS = "You are a helpful assistant. Answer the user's request directly, in plain prose."
STORY = "Write a long story about a lighthouse keeper who finds a message in a bottle."
QUESTIONS = [
    "Why is the sky blue?",
    "How do bees make honey?",
    "What is a prime number?",
    "Name a use for a paperclip.",
    "How does a rainbow form?",
]
TERMINAL = {"completed", "incomplete", "failed", "cancelled", "expired"}
DONE_OK = ("completed", "incomplete")  # incomplete: cut off by max_completion_tokens, as asked
STOPPING = {f"thread.run.{status}" for status in TERMINAL} | {"thread.run.requires_action"}


@dataclass(frozen=True)
class Plan:
    """How much work one run does; every loop is bounded by these counts and durations."""

    name: str
    pairs: int
    max_tokens: int
    first_delta_pairs: int
    first_delta_max_tokens: int
    concurrent: int
    concurrent_max_tokens: int
    speed_budget_s: float
    first_delta_budget_s: float
    concurrent_timeout_s: float


FULL = Plan(
    name="full",
    pairs=20,
    max_tokens=128,
    first_delta_pairs=30,
    first_delta_max_tokens=2,
    concurrent=50,
    concurrent_max_tokens=16,
    speed_budget_s=100.0,
    first_delta_budget_s=45.0,
    concurrent_timeout_s=90.0,
)
QUICK = Plan(
    name="quick",
    pairs=3,
    max_tokens=128,
    first_delta_pairs=6,
    first_delta_max_tokens=2,
    concurrent=10,
    concurrent_max_tokens=16,
    speed_budget_s=15.0,
    first_delta_budget_s=8.0,
    concurrent_timeout_s=25.0,
)


# ---------------------------------------------------------------------------------------------- the server side


@dataclass
class RunStream:
    """One streamed run as the client saw it: arrival times (time.perf_counter()) of its events."""

    posted: float = field(default_factory=time.perf_counter)
    run_id: str | None = None
    created: float | None = None
    in_progress: float | None = None
    message_created: float | None = None
    first_delta: float | None = None
    last_delta: float | None = None
    ended: float | None = None
    status: str | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    pieces: list[str] = field(default_factory=list)
    error: str | None = None
    _event: str | None = None

    def feed(self, line: str, now: float) -> bool:
        """Take one SSE line that arrived at `now`; True once the stream has said `done`."""
        if line.startswith("event: "):
            self._event = line[len("event: ") :]
            return False
        if not line.startswith("data: "):
            return False
        name, data = self._event, line[len("data: ") :]
        if name == "done":
            self.ended = now
            return True
        if name == "thread.message.delta":
            self.first_delta = self.first_delta or now
            self.last_delta = now
            for part in json.loads(data)["delta"]["content"]:
                self.pieces.append(part["text"]["value"])
        elif name == "thread.run.created":
            self.created, self.run_id = now, json.loads(data)["id"]
        elif name == "thread.run.in_progress":
            self.in_progress = self.in_progress or now
        elif name == "thread.message.created":
            self.message_created = self.message_created or now
        elif name in STOPPING:
            run = json.loads(data)
            self.status = run["status"]
            usage = run.get("usage") or {}
            self.tokens, self.prompt_tokens = usage.get("completion_tokens", 0), usage.get("prompt_tokens", 0)
            if run.get("last_error"):
                self.error = f"{run['last_error']['code']}: {run['last_error']['message']}"
        elif name == "error":
            self.error = f"error event: {data[:200]}"
        return False

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def ms(self, start: str, end: str) -> float:
        """Milliseconds between the arrivals of two events, named by attribute ("posted" for the POST)."""
        times = getattr(self, start), getattr(self, end)
        if None in times:
            raise RuntimeError(f"run {self.run_id} is missing an event (status {self.status}, error {self.error})")
        return (times[1] - times[0]) * 1000

    @property
    def first_delta_ms(self) -> float:
        return self.ms("posted", "first_delta")

    @property
    def decode_rate(self) -> float:
        """(usage completion tokens - 1) / time from the first delta to the last."""
        if self.first_delta is None or self.last_delta is None:
            raise RuntimeError(f"run {self.run_id} streamed no delta (status {self.status}, error {self.error})")
        span = self.last_delta - self.first_delta
        return (self.tokens - 1) / span if span > 0 else float("nan")


def _body(assistant_id: str, max_tokens: int) -> dict[str, Any]:
    """A streamed, greedy run of the assistant, cut off at `max_tokens`."""
    return {
        "assistant_id": assistant_id,
        "stream": True,
        "temperature": 0,
        "max_completion_tokens": max_tokens,
    }


class ServerSide:
    """An assistant, its threads, and streamed runs, one request at a time over one kept-alive connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        headers = {"Authorization": f"Bearer {server.api_key}"}
        self.client = httpx.Client(base_url=server.base_url, headers=headers, timeout=60)
        body = {"model": MODEL, "name": "bench", "instructions": INSTRUCTIONS}
        self.assistant_id: str = checked(self.client.post("/v1/assistants", json=body)).json()["id"]

    def thread(self, text: str) -> str:
        """A new thread holding one user message; its id."""
        body = {"messages": [{"role": "user", "content": text}]}
        return checked(self.client.post("/v1/threads", json=body)).json()["id"]

    def run(self, thread_id: str, max_tokens: int) -> RunStream:
        """Stream one run on the thread to its end; raises if it does not complete cleanly."""
        stream = RunStream()
        path = f"/v1/threads/{thread_id}/runs"
        with self.client.stream("POST", path, json=_body(self.assistant_id, max_tokens)) as response:
            if response.status_code != 200:
                response.read()
                checked(response)
            for line in response.iter_lines():
                if stream.feed(line, time.perf_counter()):
                    break
        if stream.error or stream.status not in DONE_OK:
            raise RuntimeError(f"run {stream.run_id} ended {stream.status}: {stream.error}")
        wait_quiet(self.server)
        return stream

    def request_floor_ms(self, samples: int) -> dict[str, float]:
        """Median round trips of GET /health and of POST /v1/threads (one write transaction), for scale."""
        times: dict[str, list[float]] = {"GET /health": [], "POST /v1/threads": []}
        for _ in range(samples):
            for name, values in times.items():
                started = time.perf_counter()
                if name == "GET /health":
                    checked(self.client.get("/health"))
                else:
                    self.thread("Hello.")
                values.append((time.perf_counter() - started) * 1000)
        return {name: statistics.median(values) for name, values in times.items()}

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------------------------------------- measurements

Pair = tuple[RunStream, Run]


def _pair(server: ServerSide, raw: RawModel, prompt: str, max_tokens: int, server_first: bool) -> Pair:
    """One server run (on a new thread) and one raw run of the same conversation, one after the other."""
    thread_id = server.thread(STORY)
    if server_first:
        server_run = server.run(thread_id, max_tokens)
        return server_run, raw.generate(prompt, max_tokens, chat=True)
    raw_run = raw.generate(prompt, max_tokens, chat=True)
    return server.run(thread_id, max_tokens), raw_run


def measure_pairs(
    server: ServerSide, raw: RawModel, prompt: str, count: int, max_tokens: int, budget_s: float
) -> list[Pair]:
    """Up to `count` alternated (server, raw) pairs after one warm-up pair; at least MIN_PAIRS, then by time."""
    _pair(server, raw, prompt, WARMUP_TOKENS, server_first=True)
    pairs: list[Pair] = []
    deadline = time.monotonic() + budget_s
    for index in range(count):
        if index >= MIN_PAIRS and time.monotonic() > deadline:
            break
        pairs.append(_pair(server, raw, prompt, max_tokens, server_first=index % 2 == 0))
    return pairs


@dataclass
class Concurrent:
    """The concurrent runs, the wall time until all had ended, the statuses a later retrieve saw, the problems."""

    streams: list[RunStream]
    wall_s: float
    retrieved: dict[str, int]
    failures: list[str]


async def measure_concurrent(server: Server, assistant_id: str, plan: Plan) -> Concurrent:
    """Create plan.concurrent streamed runs at once, one per new thread; read them all to their end."""
    limits = httpx.Limits(max_connections=plan.concurrent + 4, max_keepalive_connections=plan.concurrent + 4)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, timeout=plan.concurrent_timeout_s, limits=limits
    ) as client:

        async def new_thread(index: int) -> str:
            body = {"messages": [{"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}]}
            return checked(await client.post("/v1/threads", json=body)).json()["id"]

        thread_ids = [await new_thread(index) for index in range(plan.concurrent)]
        streams = [RunStream() for _ in thread_ids]
        body = _body(assistant_id, plan.concurrent_max_tokens)

        async def consume(thread_id: str, stream: RunStream) -> None:
            stream.posted = time.perf_counter()
            try:
                async with client.stream("POST", f"/v1/threads/{thread_id}/runs", json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        checked(response)
                    async for line in response.aiter_lines():
                        if stream.feed(line, time.perf_counter()):
                            break
            except Exception as exc:  # counted as a failure
                stream.error = f"{type(exc).__name__}: {exc}"[:200]

        started = time.perf_counter()
        tasks = [asyncio.create_task(consume(t, s)) for t, s in zip(thread_ids, streams, strict=True)]
        _, pending = await asyncio.wait(tasks, timeout=plan.concurrent_timeout_s)
        for task in pending:  # their streams keep status None: reported as not finished
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall_s = time.perf_counter() - started
        retrieved: dict[str, int] = {}
        failures: list[str] = []
        for thread_id, stream in zip(thread_ids, streams, strict=True):
            status = None
            if stream.run_id is not None:
                status = checked(await client.get(f"/v1/threads/{thread_id}/runs/{stream.run_id}")).json()["status"]
                retrieved[status] = retrieved.get(status, 0) + 1
            problem = (
                stream.error
                or (f"no terminal event within {plan.concurrent_timeout_s:g} s" if stream.status is None else None)
                or (f"stream ended {stream.status}" if stream.status not in DONE_OK else None)
                or (f"retrieved as {status}" if status not in DONE_OK else None)
            )
            if problem:
                failures.append(f"{stream.run_id or thread_id}: {problem}")
    return Concurrent(streams, wall_s, retrieved, failures)


# ---------------------------------------------------------------------------------------------- report


def _spread(values: list[float], digits: int = 1) -> str:
    """median (min..max)"""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def _speed_lines(pairs: list[Pair]) -> list[str]:
    """Both sides' rates, the paired ratio against the goal, and whether the greedy outputs agree."""
    ratios = [server.decode_rate / raw.decode_rate for server, raw in pairs]
    ratio = statistics.median(ratios)
    server_tokens = sorted({server.tokens for server, _ in pairs})
    raw_tokens = sorted({raw.tokens for _, raw in pairs})
    reference = pairs[0][1]
    same = all(s.text == reference.text and r.text == reference.text for s, r in pairs)
    same = same and server_tokens == raw_tokens == [reference.tokens]
    statuses = "/".join(sorted({server.status or "-" for server, _ in pairs}))
    outcome = (
        f"identical in all {2 * len(pairs)} runs ({reference.tokens} tokens; runs ended {statuses})"
        if same
        else f"DIFFER: tokens server {server_tokens} raw {raw_tokens}; first texts equal: "
        f"{pairs[0][0].text == reference.text}"
    )
    return [
        f"   server (run, SSE)  decode tok/s {_spread([s.decode_rate for s, _ in pairs])}",
        f"   raw (llama here)   decode tok/s {_spread([r.decode_rate for _, r in pairs])}",
        f"   server/raw, median of {len(ratios)} paired ratios: {ratio:.3f} ({min(ratios):.2f}..{max(ratios):.2f})"
        f"   goal >= {SPEED_GOAL}   {verdict(ratio >= SPEED_GOAL)}",
        f"   greedy outputs: {outcome}; prompt tokens {sorted({s.prompt_tokens for s, _ in pairs})}",
    ]


def _first_delta_lines(pairs: list[Pair], floor: dict[str, float]) -> list[str]:
    """The paired overhead against the goal, then where the run path spends it (medians of the steps)."""
    differences = [server.first_delta_ms - raw.ttft_ms for server, raw in pairs]
    overhead = statistics.median(differences)
    raw_ms = statistics.median([raw.ttft_ms for _, raw in pairs])

    def step(start: str, end: str) -> str:
        """Median and max milliseconds between two events."""
        values = [server.ms(start, end) for server, _ in pairs]
        return f"{statistics.median(values):8.1f} (max {max(values):6.1f})"

    beyond = [server.ms("in_progress", "message_created") - raw.ttft_ms for server, raw in pairs]
    return [
        f"   server: POST -> first thread.message.delta  {_spread([s.first_delta_ms for s, _ in pairs])} ms",
        f"   raw:    call -> first token                 {_spread([r.ttft_ms for _, r in pairs])} ms",
        f"   overhead, median of {len(pairs)} paired differences: {overhead:+.1f} ms"
        f" ({min(differences):+.1f}..{max(differences):+.1f})   goal <= +{FIRST_DELTA_GOAL_MS:g} ms"
        f"   {verdict(overhead <= FIRST_DELTA_GOAL_MS)}",
        "   where it goes (ms between the arrivals of the events at the client, median (max)):",
        f"     {'POST -> run.created':<36}{step('posted', 'created')}   HTTP, auth, the create transaction",
        f"     {'run.created -> run.in_progress':<36}{step('created', 'in_progress')}   worker wake-up, claim and"
        " move transactions",
        f"     {'run.in_progress -> message.created':<36}{step('in_progress', 'message_created')}   thread read,"
        " tokenization, prompt and first token, the message + step transaction",
        f"     {'  the same less raw first token':<36}{statistics.median(beyond):8.1f} (max {max(beyond):6.1f})"
        f"   paired with the raw first token (median {raw_ms:.1f} ms)",
        f"     {'message.created -> first delta':<36}{step('message_created', 'first_delta')}",
        "   (for scale: "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in floor.items())
        + f" round trip, medians of {FLOOR_SAMPLES})",
    ]


def _concurrent_lines(result: Concurrent) -> tuple[list[str], bool]:
    """Latency percentiles of the concurrent runs, their statuses, and the verdict."""
    streams = result.streams
    ok = not result.failures
    done = [s for s in streams if s.created and s.in_progress and s.first_delta and s.ended]
    lines: list[str] = []
    if len(done) >= 2:

        def row(label: str, values: list[float]) -> str:
            return (
                f"     {label:<48}p50 {percentile(values, 50):8.1f}   p99 {percentile(values, 99):8.1f}"
                f"   max {max(values):8.1f}"
            )

        served = sorted(done, key=lambda s: s.first_delta or 0.0)
        in_order = [s.run_id for s in served] == sorted(s.run_id or "" for s in served)
        lines += [
            "   per run (ms, at the client):",
            row("POST -> run.created", [s.ms("posted", "created") for s in done]),
            row("queue wait: POST -> run.in_progress", [s.ms("posted", "in_progress") for s in done]),
            row("run.in_progress -> first delta (engine FIFO)", [s.ms("in_progress", "first_delta") for s in done]),
            row("POST -> done", [s.ms("posted", "ended") for s in done]),
            f"   first deltas in run-id (queue) order: {'yes' if in_order else 'no'}; completion tokens"
            f" {sorted({s.tokens for s in done})}",
        ]
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(result.retrieved.items()))
    lines.append(
        f"   {len(streams)} runs: streams ended {sum(s.status in TERMINAL for s in streams)} terminal; retrieved"
        f" afterwards: {statuses or 'none'}; {len(result.failures)} errors; wall {result.wall_s:.2f} s"
        f"   {verdict(ok)}"
    )
    lines += [f"   ! {failure}" for failure in result.failures[:5]]
    return lines, ok


def report(
    plan: Plan,
    raw: RawModel,
    speed: list[Pair],
    first: list[Pair],
    floor: dict[str, float],
    concurrent: Concurrent,
    others_cpus: float | None,
    log_problems: int,
    total_s: float,
) -> str:
    """The summary, as printed."""
    llama = raw.llama
    prompt_tokens = raw.engine.count_tokens(raw.render(_conversation(STORY)))
    if others_cpus is None:
        load = "n/a (no /proc)"
    else:
        load = f"other processes kept {others_cpus:.2f} of {os.cpu_count()} CPUs busy during the measurements"
        if others_cpus > BUSY_OTHERS_CPUS:
            load += " - timings skewed, first-delta times most (prompt processing runs on every core)"
    concurrent_lines, _ = _concurrent_lines(concurrent)
    lines = [
        "",
        "=" * 110,
        f"assistd runs benchmark ({plan.name})",
        f"command : {shlex.join([sys.executable, *sys.argv])}",
        f"machine : {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        "; server and raw model share it, never running at once",
        f"load    : {load}",
        f"model   : {MODEL} ({os.path.basename(llama.model_path)}), n_ctx {llama.n_ctx()}, threads {llama.n_threads}"
        f" (generation) / {llama.n_threads_batch} (prompt), temperature 0, on both sides",
        f"run     : a new thread with one user message per run; assistant instructions as the system message"
        f" ({prompt_tokens}-token rendered prompt); POST /v1/threads/{{id}}/runs stream=True, raw SSE over httpx",
        "",
        f"1. Decode speed - {len(speed)} alternated (server, raw) pairs, max_completion_tokens {plan.max_tokens};"
        " decode = (usage completion tokens - 1) / first to last delta",
        *_speed_lines(speed),
        "",
        f"2. First thread.message.delta - {len(first)} alternated pairs, max_completion_tokens"
        f" {plan.first_delta_max_tokens}; overhead = server (POST -> first delta) - raw (call -> first token)",
        *_first_delta_lines(first, floor),
        "",
        f"3. {plan.concurrent} concurrent runs - {plan.concurrent} threads with a short question, {plan.concurrent}"
        f" streamed runs created at once (httpx.AsyncClient), max_completion_tokens {plan.concurrent_max_tokens};"
        f" worker concurrency {os.environ.get('ASSISTD_WORKER_CONCURRENCY', '4 (default)')}",
        *concurrent_lines,
        "",
        f"server log: {log_problems} warning/error lines"
        + ("" if log_problems == 0 else " (see the server log: kept only while the server runs)"),
        f"total {total_s:.1f} s"
        + ("   (quick: a smoke run; too few samples for the verdicts to mean much)" if plan is QUICK else ""),
        "=" * 110,
    ]
    return "\n".join(lines)


def _conversation(text: str) -> list[dict[str, str]]:
    """The conversation the executor builds for a run on a thread holding one user message."""
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}]


def _log_problems(server: Server) -> int:
    """Lines of the server log (level warning and up) that mention a warning, an error or a traceback."""
    if not server.log_path.exists():
        return 0
    words = ("WARNING", "ERROR", "Traceback", "CRITICAL")
    return sum(any(word in line for word in words) for line in server.log_path.read_text(errors="replace").splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (under 60 s on an idle machine)")
    plan = QUICK if parser.parse_args().quick else FULL
    started = time.perf_counter()
    with running_server() as server:
        print(f"server on {server.base_url}; loading the raw model ...", flush=True)
        with contextlib.closing(ServerSide(server)) as server_side, contextlib.closing(RawModel()) as raw:
            prompt = raw.render(_conversation(STORY))
            raw.use_fastest_threads(prompt, plan.max_tokens)
            watch = CpuWatch(server)
            print(f"measuring decode speed ({plan.pairs} pairs) ...", flush=True)
            speed = measure_pairs(server_side, raw, prompt, plan.pairs, plan.max_tokens, plan.speed_budget_s)
            print(f"measuring the first delta ({plan.first_delta_pairs} pairs) ...", flush=True)
            first = measure_pairs(
                server_side, raw, prompt, plan.first_delta_pairs, plan.first_delta_max_tokens, plan.first_delta_budget_s
            )
            floor = server_side.request_floor_ms(FLOOR_SAMPLES)
            print(f"starting {plan.concurrent} concurrent runs ...", flush=True)
            concurrent = asyncio.run(measure_concurrent(server, server_side.assistant_id, plan))
            others = watch.others_cpus()
            problems = _log_problems(server)
            total_s = time.perf_counter() - started
            summary = report(plan, raw, speed, first, floor, concurrent, others, problems, total_s)
    print(summary)
    return 0 if _concurrent_lines(concurrent)[1] else 1


if __name__ == "__main__":
    exit_with(main)
