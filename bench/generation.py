"""Token generation through a real assistd server against llama-cpp-python in-process, side by side in one run.

Starts `python -m assistd serve` on a free 127.0.0.1 port with a temporary data directory (stopped and removed
at the end, on errors, Ctrl-C and SIGTERM too) and builds the same engine in this process from the same
built-in model configuration: the same GGUF (smollm2-135m-instruct), n_ctx 8192. The "raw" side runs what the
engine's worker thread runs (create_completion with the engine's sampling options, its never-empty rule and its
token counter), inline, with no server around it, keeping its evaluated prefix as llama-cpp-python does by
default, at its fastest thread count: before measuring, raw decodes with each count from 1 to the CPUs this
process may use and keeps the fastest. The server uses those CPUs, as the engine does by default.
Server and raw runs alternate and never overlap: both share this machine's cores (after each server request the
bench waits until the server is quiet: its engine evaluates the answer again once it has gone out).

1. Generation speed: streamed /v1/completions (the rendered chat prompt as a raw prompt) and streamed
   /v1/chat/completions (httpx, one request at a time) against raw runs on the same prompt text, greedy
   (temperature 0), the same max_tokens. Decode rate = tokens after the first / time from the first to the last
   token (prompt processing excluded); end-to-end rate = completion tokens (usage) / whole request. Alongside:
   CPU milliseconds per decoded token of the generating process (the server, or this one for raw) and of the
   client. Goal: server/raw decode rate >= 0.95, as the median ratio of adjacent (server, raw) runs over both
   endpoints (they stream alike; the per-endpoint figures differ by noise). Greedy outputs are compared (text
   and token count).
2. Time to first token: server (until the first content chunk reaches the client) minus raw (until
   llama-cpp-python's stream yields its first piece), as the median of alternated pairs, for the chat prompt
   and for a short raw prompt on /v1/completions (less compute, so the overhead stands out of the noise).
   Goal: overhead <= 15 ms.
3. Eight concurrent streams: eight streamed chat completions with different prompts started at once through
   the official `openai` SDK (AsyncOpenAI). All must finish without error; the table shows how the engine's
   single worker serves them (FIFO: staggered first tokens, one stream at a time).

Other processes on the machine skew every timing (prompt processing most: it runs on all cores), so the summary
says how busy they kept the CPUs (Linux /proc/stat).

Usage: python bench/generation.py [--quick]   (--quick: a small smoke run, under 60 s on an idle machine)
Exit status 0 when the measurements completed, goals met or not; non-zero on any error (a failed stream too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
import openai
from _server import Server, checked, exit_with, running_server, verdict, wait_quiet
from llama_cpp import LogitsProcessorList, StoppingCriteriaList

from assistd.engines.base import GenerationRequest
from assistd.engines.cpus import usable_cpus
from assistd.engines.registry import BUILTIN_CONFIG, DEFAULT_TEXT_MODEL, ModelRegistry, ModelsConfig

MODEL = DEFAULT_TEXT_MODEL
SPEED_GOAL = 0.95
TTFT_GOAL_MS = 15.0
MIN_ROUNDS = 1
MIN_TTFT_PAIRS = 3
WARMUP_TOKENS = 8
FLOOR_SAMPLES = 30
BUSY_OTHERS_CPUS = 0.1  # above this, the summary warns that outside load skewed the timings
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper who finds a message in a bottle."}]
SHORT_PROMPT = "Once upon a time"
CONCURRENT_PROMPTS = [
    "Explain how a rainbow forms.",
    "Give three tips for learning to cook.",
    "Describe the city of Lisbon in a few sentences.",
    "What is a prime number? Give examples.",
    "Write a short poem about autumn leaves.",
    "How do bees make honey?",
    "List some uses of a paperclip.",
    "Why is the sky blue?",
]


@dataclass(frozen=True)
class Plan:
    """How much work one run does; every loop is bounded by these counts and durations."""

    name: str
    rounds: int
    max_tokens: int
    ttft_pairs: int
    ttft_max_tokens: int
    concurrent_max_tokens: int
    speed_budget_s: float
    ttft_budget_s: float
    concurrent_timeout_s: float


FULL = Plan(
    name="full",
    rounds=10,
    max_tokens=128,
    ttft_pairs=20,
    ttft_max_tokens=4,
    concurrent_max_tokens=64,
    speed_budget_s=120.0,
    ttft_budget_s=60.0,
    concurrent_timeout_s=120.0,
)
QUICK = Plan(
    name="quick",
    rounds=2,
    max_tokens=48,
    ttft_pairs=5,
    ttft_max_tokens=2,
    concurrent_max_tokens=12,
    speed_budget_s=15.0,
    ttft_budget_s=10.0,
    concurrent_timeout_s=60.0,
)


CpuClock = Callable[[], float | None]


@dataclass
class Run:
    """One generation, timed with time.perf_counter() from `started`; CPU read at the first piece and the end.

    `cpu` reads the CPU seconds of the process that generates (the server's, or this one's for raw runs);
    for server runs `client_cpu` reads this process's, the client's.
    """

    cpu: CpuClock
    client_cpu: CpuClock | None = None
    started: float = field(default_factory=time.perf_counter)
    first: float | None = None
    last: float | None = None
    ended: float = 0.0
    pieces: list[str] = field(default_factory=list)
    tokens: int = 0
    prompt_tokens: int = 0
    finish: str | None = None
    cpu_at_first: tuple[float | None, float | None] = (None, None)
    decode_cpu_s: float | None = None
    client_decode_cpu_s: float | None = None

    def piece(self, text: str) -> None:
        """Note a text piece arriving now."""
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self.cpu_at_first = (self.cpu(), self.client_cpu() if self.client_cpu else None)
        self.last = now
        self.pieces.append(text)

    def end(self) -> None:
        """Note the end of the stream."""
        self.ended = time.perf_counter()
        generating, client = self.cpu_at_first
        cpu_now = self.cpu()
        if generating is not None and cpu_now is not None:
            self.decode_cpu_s = cpu_now - generating
        if client is not None and self.client_cpu:
            self.client_decode_cpu_s = (self.client_cpu() or 0.0) - client

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def ttft_ms(self) -> float:
        return (self._first - self.started) * 1000

    @property
    def decode_rate(self) -> float:
        """Tokens after the first, per second from the first to the last piece: prompt processing excluded."""
        span = (self.last or self._first) - self._first
        return (self.tokens - 1) / span if span > 0 else float("nan")

    @property
    def e2e_rate(self) -> float:
        """Completion tokens per second of the whole request."""
        return self.tokens / (self.ended - self.started)

    def cpu_ms_per_token(self, client: bool = False) -> float | None:
        """CPU milliseconds per token after the first (generating process, or the client)."""
        seconds = self.client_decode_cpu_s if client else self.decode_cpu_s
        return None if seconds is None or self.tokens < 2 else seconds * 1000 / (self.tokens - 1)

    @property
    def _first(self) -> float:
        if self.first is None:
            raise RuntimeError("the generation produced no text")
        return self.first


class CpuWatch:
    """How busy other processes (neither this one nor the server) kept the CPUs while the measurements ran."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float] | None:
        """(machine busy CPU s, this process CPU s, server CPU s, wall s), or None without /proc."""
        server_cpu = self.server.cpu_seconds()
        try:
            fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        if server_cpu is None:
            return None
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        return busy, time.process_time(), server_cpu, time.perf_counter()

    def others_cpus(self) -> float | None:
        """Average number of CPUs that other processes kept busy since the watch started, or None."""
        end = self._sample()
        if self.start is None or end is None:
            return None
        busy, own, server, wall = (b - a for a, b in zip(self.start, end, strict=True))
        return max(0.0, busy - own - server) / wall


# ---------------------------------------------------------------------------------------------- the two sides


class RawModel:
    """The server's engine built in this process from the same built-in configuration, generating inline."""

    def __init__(self) -> None:
        config = ModelsConfig.model_validate({"models": {MODEL: BUILTIN_CONFIG["models"][MODEL]}})
        self.registry = ModelRegistry.from_config(config, created=0)
        self.engine = self.registry.text(MODEL)
        # The engine's own objects, so the raw side runs exactly what its worker thread runs.
        self.llama = self.engine._llama
        self.eos_text: str = self.engine._eos_text
        self.thread_rates: dict[int, float] = {}  # decode tokens/s by thread count, once measured

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text the server renders for these chat messages (the engine's own code path)."""
        return self.engine.render_chat(GenerationRequest(messages=messages))

    def generate(self, prompt: str, max_tokens: int, *, chat: bool) -> Run:
        """What LlamaCppEngine's worker does for a greedy request, without threads, queues or HTTP."""
        options = self.engine._sampling(GenerationRequest(prompt=prompt, temperature=0.0))
        stops = [self.eos_text] if chat else []
        seen: list[int] = []
        eos = self.llama.token_eos()

        def count(input_ids: Any, _logits: Any) -> bool:
            seen.append(len(input_ids))
            return False

        def never_empty(_input_ids: Any, logits: Any) -> Any:
            if not seen:
                logits[eos] = -float("inf")
            return logits

        run = Run(cpu=time.process_time)
        stream = self.llama.create_completion(
            prompt,
            max_tokens=max_tokens,
            stop=stops,
            stream=True,
            grammar=None,
            stopping_criteria=StoppingCriteriaList([count]),
            logits_processor=LogitsProcessorList([never_empty]),
            **options,
        )
        for part in stream:
            choice = part["choices"][0]
            if choice["text"]:
                run.piece(choice["text"])
            run.finish = choice["finish_reason"] or run.finish
        run.end()
        run.tokens = max(seen) - seen[0] + 1 if seen else 0
        run.prompt_tokens = self.engine.count_tokens(prompt)
        return run

    def use_fastest_threads(self, prompt: str, max_tokens: int) -> None:
        """Decode with each thread count from 1 to the usable CPUs (best of two runs) and keep the fastest; the
        decode rate of each goes to `thread_rates`."""
        rates = self.thread_rates
        for threads in range(1, usable_cpus() + 1):
            llama_cpp.llama_set_n_threads(self.llama._ctx.ctx, threads, threads)
            self.llama.n_threads = self.llama.n_threads_batch = threads
            rates[threads] = max(self.generate(prompt, max_tokens, chat=True).decode_rate for _ in range(2))
        fastest = max(rates, key=lambda threads: rates[threads])
        llama_cpp.llama_set_n_threads(self.llama._ctx.ctx, fastest, fastest)
        self.llama.n_threads = self.llama.n_threads_batch = fastest

    def close(self) -> None:
        asyncio.run(self.registry.close())


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON objects of an SSE stream, up to [DONE]; an error event raises."""
    for line in response.iter_lines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if data == "[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            raise RuntimeError(f"error event in the stream: {event['error']}")
        yield event


class ServerSide:
    """Streamed requests to the server, one at a time, over one kept-alive httpx connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        headers = {"Authorization": f"Bearer {server.api_key}"}
        self.client = httpx.Client(base_url=server.base_url, headers=headers, timeout=60)

    def generate(self, prompt: str | list[dict[str, str]], max_tokens: int) -> Run:
        """One greedy request: /v1/chat/completions for messages, /v1/completions for a prompt string."""
        chat = not isinstance(prompt, str)
        body: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
            **({"messages": prompt} if chat else {"prompt": prompt}),
        }
        path = "/v1/chat/completions" if chat else "/v1/completions"
        run = Run(cpu=self.server.cpu_seconds, client_cpu=time.process_time)
        with self.client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                response.read()
                checked(response)
            for event in _events(response):
                for choice in event["choices"]:
                    text = choice["delta"].get("content") if chat else choice["text"]
                    if text:
                        run.piece(text)
                    run.finish = choice.get("finish_reason") or run.finish
                if event.get("usage"):
                    run.tokens = event["usage"]["completion_tokens"]
                    run.prompt_tokens = event["usage"]["prompt_tokens"]
        run.end()
        wait_quiet(self.server)  # the engine evaluates the answer again: not while raw is timed
        return run

    def request_floor_ms(self, samples: int) -> dict[str, float]:
        """Median round trips of GET /health and of authenticated GET /v1/models: what any request pays."""
        times: dict[str, list[float]] = {"/health": [], "/v1/models": []}
        for _ in range(samples):
            for path, values in times.items():
                started = time.perf_counter()
                checked(self.client.get(path))
                values.append((time.perf_counter() - started) * 1000)
        return {path: statistics.median(values) for path, values in times.items()}

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------------------------------------- measurements


Runs = dict[tuple[str, str], list[Run]]  # (endpoint, side) -> runs
Case = tuple[str | list[dict[str, str]], str, bool]  # what the server is sent, the raw prompt text, chat or not


def _pair(server: ServerSide, raw: RawModel, case: Case, max_tokens: int, server_first: bool) -> tuple[Run, Run]:
    """One server run and one raw run of the same case, one after the other; (server run, raw run)."""
    server_prompt, raw_prompt, chat = case
    if server_first:
        server_run = server.generate(server_prompt, max_tokens)
        return server_run, raw.generate(raw_prompt, max_tokens, chat=chat)
    raw_run = raw.generate(raw_prompt, max_tokens, chat=chat)
    return server.generate(server_prompt, max_tokens), raw_run


def measure_speed(server: ServerSide, raw: RawModel, plan: Plan) -> Runs:
    """Rounds of (server, raw) x (completions, chat) on the story prompt; the side that goes first alternates."""
    story = raw.render(STORY)
    cases: dict[str, Case] = {"completions": (story, story, False), "chat": (STORY, story, True)}
    for case in cases.values():  # warm-up, not measured
        _pair(server, raw, case, WARMUP_TOKENS, server_first=True)
    runs: Runs = {(endpoint, side): [] for endpoint in cases for side in ("server", "raw")}
    deadline = time.monotonic() + plan.speed_budget_s
    for round_index in range(plan.rounds):
        if round_index >= MIN_ROUNDS and time.monotonic() > deadline:
            break
        for endpoint, case in cases.items():
            server_run, raw_run = _pair(server, raw, case, plan.max_tokens, server_first=round_index % 2 == 0)
            runs[endpoint, "server"].append(server_run)
            runs[endpoint, "raw"].append(raw_run)
    return runs


def measure_ttft(server: ServerSide, raw: RawModel, plan: Plan) -> dict[str, list[tuple[Run, Run]]]:
    """(server, raw) pairs per case, alternating which side goes first; bounded by count and time."""
    cases: dict[str, Case] = {
        "chat": (STORY, raw.render(STORY), True),
        "short": (SHORT_PROMPT, SHORT_PROMPT, False),
    }
    pairs: dict[str, list[tuple[Run, Run]]] = {name: [] for name in cases}
    for case in cases.values():  # warm-up, not measured
        _pair(server, raw, case, plan.ttft_max_tokens, server_first=True)
    deadline = time.monotonic() + plan.ttft_budget_s
    for index in range(plan.ttft_pairs):
        if index >= MIN_TTFT_PAIRS and time.monotonic() > deadline:
            break
        for name, case in cases.items():
            pairs[name].append(_pair(server, raw, case, plan.ttft_max_tokens, server_first=index % 2 == 0))
    return pairs


@dataclass
class Stream:
    """One of the concurrent streams, its times in seconds from the moment all were started."""

    index: int
    prompt: str
    ttft_s: float | None = None
    last_s: float | None = None
    total_s: float | None = None
    tokens: int = 0
    finish: str | None = None
    error: str | None = None


async def measure_concurrent(server: Server, plan: Plan) -> tuple[list[Stream], float]:
    """Start all CONCURRENT_PROMPTS at once through AsyncOpenAI; (streams, wall seconds for all of them)."""
    streams = [Stream(index, prompt) for index, prompt in enumerate(CONCURRENT_PROMPTS)]
    client = openai.AsyncOpenAI(
        api_key=server.api_key, base_url=f"{server.base_url}/v1", max_retries=0, timeout=plan.concurrent_timeout_s
    )

    async def consume(stream: Stream, started: float) -> None:
        try:
            response = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": stream.prompt}],
                max_tokens=plan.concurrent_max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in response:
                if chunk.usage:
                    stream.tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.delta.content:
                        stream.last_s = time.perf_counter() - started
                        stream.ttft_s = stream.ttft_s or stream.last_s
                    stream.finish = choice.finish_reason or stream.finish
            if stream.ttft_s is None:
                stream.error = "no content"
        except Exception as exc:  # reported in the table
            stream.error = f"{type(exc).__name__}: {exc}"[:60]
        stream.total_s = time.perf_counter() - started

    async with client:
        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(consume(stream, started) for stream in streams)), timeout=plan.concurrent_timeout_s + 5
        )
        return streams, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _first_difference(a: str, b: str) -> int:
    """The index of the first character where `a` and `b` differ (the shorter length if one begins the other)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _pair_ratios(server: list[Run], raw: list[Run], rate: Callable[[Run], float]) -> list[float]:
    """Server/raw ratios of each server run and the raw run next to it: drift in the machine's speed cancels."""
    return [rate(s) / rate(r) for s, r in zip(server, raw, strict=True)]


def _speed_lines(runs: Runs) -> list[str]:
    """The speed table: two rows and a ratio line per endpoint, the verdict over all pairs, then the outputs."""
    rows, matches, all_ratios = [], [], []
    for endpoint, label in (("completions", "/v1/completions"), ("chat", "/v1/chat/completions")):
        server, raw = runs[endpoint, "server"], runs[endpoint, "raw"]
        for side, side_runs in (("server", server), ("raw", raw)):
            rates = [run.decode_rate for run in side_runs]
            tokens = sorted({run.tokens for run in side_runs})
            cpu = _median_or_none([run.cpu_ms_per_token() for run in side_runs])
            client = _median_or_none([run.cpu_ms_per_token(client=True) for run in side_runs])
            rows.append(
                f"   {label if side == 'server' else '':<22}{side:<7}{len(side_runs):>4}"
                f"{'/'.join(map(str, tokens)):>7}{_median(rates):>9.1f}  ({min(rates):5.1f}..{max(rates):5.1f})"
                f"{_median([run.e2e_rate for run in side_runs]):>10.1f}"
                f"{_median([run.ttft_ms for run in side_runs]):>9.0f}"
                f"{_ms(cpu):>10}{_ms(client) if side == 'server' else '':>11}"
            )
        ratios = _pair_ratios(server, raw, lambda run: run.decode_rate)
        e2e = _median(_pair_ratios(server, raw, lambda run: run.e2e_rate))
        all_ratios += ratios
        rows.append(
            f"   {'':<22}server/raw decode, median of {len(ratios)} pairs: {_median(ratios):.3f}"
            f" ({min(ratios):.2f}..{max(ratios):.2f}); end-to-end {e2e:.3f}"
        )
        everything = server + raw
        reference = raw[0]
        finish = "/".join(sorted({str(run.finish) for run in everything}))
        prompt_tokens = "/".join(map(str, sorted({run.prompt_tokens for run in everything})))
        if all(run.text == reference.text and run.tokens == reference.tokens for run in everything):
            outcome = f"identical in all {len(everything)} runs ({reference.tokens} tokens, finish {finish})"
        else:
            at = _first_difference(server[0].text, reference.text)
            outcome = (
                f"DIFFER: token counts server {sorted({r.tokens for r in server})}"
                f" raw {sorted({r.tokens for r in raw})}, first difference at character {at}"
            )
        matches.append(f"   {label}: greedy outputs {outcome}; prompt tokens {prompt_tokens}")
    decode = _median(all_ratios)
    rows.append(
        f"   both endpoints: server/raw decode, median of {len(all_ratios)} pairs: {decode:.3f}"
        f"   goal >= {SPEED_GOAL}   {verdict(decode >= SPEED_GOAL)}"
    )
    return rows + matches


def _ttft_lines(pairs: dict[str, list[tuple[Run, Run]]], labels: dict[str, str]) -> list[str]:
    """One row per TTFT case: medians of each side and of the paired differences, judged against the goal."""
    rows = []
    for name, label in labels.items():
        case = pairs[name]
        server_ms = _median([server.ttft_ms for server, _ in case])
        raw_ms = _median([raw.ttft_ms for _, raw in case])
        differences = [server.ttft_ms - raw.ttft_ms for server, raw in case]
        overhead = _median(differences)
        rows.append(
            f"   {label:<44}{len(case):>6}{server_ms:>10.1f}{raw_ms:>10.1f}{overhead:>10.1f}"
            f"  ({min(differences):6.1f}..{max(differences):6.1f}){'<= ' + f'{TTFT_GOAL_MS:g}':>8}"
            f"   {verdict(overhead <= TTFT_GOAL_MS)}"
        )
    return rows


def _concurrent_lines(streams: list[Stream], wall_s: float) -> tuple[list[str], bool]:
    """The streams table and its verdict lines; and whether all streams finished without error."""
    served = sorted((stream for stream in streams if stream.ttft_s is not None), key=lambda s: s.ttft_s or 0.0)
    order = {stream.index: position + 1 for position, stream in enumerate(served)}
    rows = [
        f"   {'stream':<8}{'served':>7}{'TTFT s':>9}{'last token s':>14}{'total s':>9}{'tokens':>8}{'finish':>8}"
        "   prompt / error"
    ]
    for stream in streams:
        ttft = "-" if stream.ttft_s is None else f"{stream.ttft_s:.2f}"
        last = "-" if stream.last_s is None else f"{stream.last_s:.2f}"
        rows.append(
            f"   {stream.index + 1:<8}{order.get(stream.index, '-')!s:>7}{ttft:>9}{last:>14}"
            f"{stream.total_s or 0.0:>9.2f}{stream.tokens:>8}{stream.finish or '-':>8}"
            f"   {stream.error or stream.prompt}"
        )
    errors = sum(stream.error is not None for stream in streams)
    finished = sum(stream.error is None and stream.finish is not None for stream in streams)
    overlaps = sum((later.ttft_s or 0.0) < (earlier.last_s or 0.0) for earlier, later in itertools.pairwise(served))
    if overlaps == 0:
        scheduling, detail = (
            "FIFO queueing",
            "one stream at a time: each finished before the next produced its first token",
        )
    else:
        scheduling, detail = "interleaved", f"{overlaps} stream(s) began before the one served before them finished"
    ttfts = [stream.ttft_s for stream in served if stream.ttft_s is not None]
    ttft_range = f"{min(ttfts):.2f}..{max(ttfts):.2f} s" if ttfts else "n/a"
    launch_order = [stream.index for stream in served] == sorted(order)
    ok = finished == len(streams) and errors == 0
    count = f"all {len(streams)}" if finished == len(streams) else f"{finished} of {len(streams)}"
    rows += [
        f"   {count} finished, {errors} errors, {scheduling}: TTFT ranges {ttft_range}   {verdict(ok)}",
        f"   ({detail}; served {'in' if launch_order else 'not in'} launch order; all done in {wall_s:.1f} s)",
    ]
    return rows, ok


def report(
    plan: Plan,
    raw: RawModel,
    runs: Runs,
    pairs: dict[str, list[tuple[Run, Run]]],
    floor: dict[str, float],
    streams: list[Stream],
    streams_wall_s: float,
    others_cpus: float | None,
    total_s: float,
) -> str:
    """The summary, as printed."""
    llama = raw.llama
    story_tokens = raw.engine.count_tokens(raw.render(STORY))
    short_tokens = raw.engine.count_tokens(SHORT_PROMPT)
    if others_cpus is None:
        load = "n/a (no /proc)"
    else:
        load = f"other processes kept {others_cpus:.2f} of {os.cpu_count()} CPUs busy during the measurements"
        if others_cpus > BUSY_OTHERS_CPUS:
            load += " - timings skewed, TTFT most (prompt processing runs on every core)"
    concurrent, _ = _concurrent_lines(streams, streams_wall_s)
    lines = [
        "",
        "=" * 110,
        f"assistd generation benchmark ({plan.name})",
        f"command : {shlex.join([sys.executable, *sys.argv])}",
        f"machine : {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        "; server and raw model share it, never running at once",
        f"load    : {load}",
        f"model   : {MODEL} ({os.path.basename(llama.model_path)}), n_ctx {llama.n_ctx()}; threads: server"
        f" {usable_cpus()} (the usable CPUs), raw {llama.n_threads}, its fastest (decode tok/s by thread count:"
        f" {', '.join(f'{n}: {rate:.0f}' for n, rate in raw.thread_rates.items())})",
        f"sampling: temperature 0 (greedy), repeat_penalty {raw.engine.defaults['repeat_penalty']}, evaluated"
        " prefixes kept, the engine's never-empty rule and token counter on both sides",
        "",
        f"1. Generation speed - {len(runs['chat', 'server'])} rounds, max_tokens {plan.max_tokens}, the {story_tokens}"
        "-token rendered chat prompt; server (httpx, streamed) and raw (llama-cpp-python here) alternated",
        f"   {'endpoint':<22}{'side':<7}{'runs':>4}{'tokens':>7}{'decode tok/s (min..max)':>25}"
        f"{'e2e tok/s':>10}{'TTFT ms':>9}{'CPU ms/tok':>11}{'client ms/tok':>14}",
        *_speed_lines(runs),
        "   (decode: tokens after the first / time from the first to the last token; CPU ms/tok: the generating"
        " process, per decoded token)",
        "",
        f"2. Time to first token - alternated (server, raw) pairs, stream=True, max_tokens {plan.ttft_max_tokens};"
        " overhead = median of the paired differences",
        f"   {'prompt':<44}{'pairs':>6}{'server ms':>10}{'raw ms':>10}{'overhead':>10}{'(min..max)':>18}{'goal ms':>9}",
        *_ttft_lines(
            pairs,
            {
                "chat": f"/v1/chat/completions, {story_tokens}-token chat prompt",
                "short": f"/v1/completions, {short_tokens}-token raw prompt",
            },
        ),
        f"   (for scale, what any request pays: GET /health {floor['/health']:.1f} ms, authenticated GET /v1/models"
        f" {floor['/v1/models']:.1f} ms round trip, p50 of {FLOOR_SAMPLES})",
        "",
        f"3. Eight concurrent streams - openai SDK (AsyncOpenAI), chat, max_tokens {plan.concurrent_max_tokens},"
        " temperature 0, all started at once",
        *concurrent,
        "",
        f"total {total_s:.1f} s"
        + ("   (quick: a smoke run; too few samples for the verdicts to mean much)" if plan is QUICK else ""),
        "=" * 110,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (under 60 s on an idle machine)")
    plan = QUICK if parser.parse_args().quick else FULL
    started = time.perf_counter()
    with running_server() as server:
        print(f"server on {server.base_url}; loading the raw model ...", flush=True)
        with contextlib.closing(ServerSide(server)) as server_side, contextlib.closing(RawModel()) as raw:
            print("finding raw's fastest thread count ...", flush=True)
            raw.use_fastest_threads(raw.render(STORY), plan.max_tokens)
            watch = CpuWatch(server)
            print("measuring generation speed ...", flush=True)
            runs = measure_speed(server_side, raw, plan)
            print("measuring time to first token ...", flush=True)
            pairs = measure_ttft(server_side, raw, plan)
            floor = server_side.request_floor_ms(FLOOR_SAMPLES)
            print(f"starting {len(CONCURRENT_PROMPTS)} concurrent streams ...", flush=True)
            streams, streams_wall_s = asyncio.run(measure_concurrent(server, plan))
            others = watch.others_cpus()
            summary = report(
                plan, raw, runs, pairs, floor, streams, streams_wall_s, others, time.perf_counter() - started
            )
    print(summary)
    return 0 if _concurrent_lines(streams, streams_wall_s)[1] else 1


if __name__ == "__main__":
    exit_with(main)
