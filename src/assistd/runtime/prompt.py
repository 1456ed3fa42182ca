"""A run's prompt: its instructions (with the response language and what its tools gathered), the thread's
messages, and this run's earlier tool calls with their outputs, as one generation request fitted to the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistd import languages
from assistd.engines.base import GenerationRequest, TextEngine
from assistd.generation.fitting import fit, prompt_budget
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import MessageRepository
from assistd.tools.base import Gathered
from assistd.tools.registry import ToolRegistry

PASSAGE_CHARS_PER_CONTEXT_TOKEN = 2  # what tools gather may take about half the context (~4 chars a token)


def budget(run: tables.Run, engine: TextEngine) -> int | None:
    """The most prompt tokens the run may use on this engine."""
    return prompt_budget(engine.context_length or None, run.max_prompt_tokens, run.max_completion_tokens)


def gathered_room(engine: TextEngine) -> int | None:
    """How many characters what the tools gather may take in the prompt (no limit when the context is unknown)."""
    return engine.context_length * PASSAGE_CHARS_PER_CONTEXT_TOKEN if engine.context_length else None


def _text_of(message: tables.Message) -> str:
    return "\n".join(block["text"]["value"] for block in message.content if block.get("type") == "text")


def _system(run: tables.Run, context: str) -> str:
    parts = [run.instructions or ""]
    if run.response_language:
        parts.append(languages.instruction(run.response_language))
    return "\n\n".join(part for part in (*parts, context) if part)


def _placed(thread: list[dict[str, Any]], context: str, late_system: bool) -> tuple[list[dict[str, Any]], str]:
    """The thread with the tools' context placed, and what is left of it for the system message at the top.

    A thread's first message gets the context in the system message, after the instructions, where a model
    reads it best; there is no conversation before it to keep. Later ones, when a user wrote them, get it just
    before them, so the prompt begins as the previous run's did: as a system message where the engine takes
    one there, else at the head of the message."""
    if not context or len(thread) < 2 or thread[-1]["role"] != "user":
        return thread, context
    *earlier, newest = thread
    if late_system:
        return [*earlier, {"role": "system", "content": context}, newest], ""
    return [*earlier, {**newest, "content": f"{context}\n\n{newest['content']}"}], ""


async def thread_messages(db: Database, run: tables.Run) -> list[tables.Message]:
    """The thread's messages, oldest first, as the run's truncation strategy keeps them (to read)."""
    async with db.read() as session:
        messages = await MessageRepository(session, run.project_id).rows(thread_id=run.thread_id)
    last = run.truncation_strategy.get("last_messages") if run.truncation_strategy.get("type") == "last_messages" else 0
    return messages[-last:] if last else messages


def build(
    run: tables.Run,
    messages: Sequence[tables.Message],
    steps: Sequence[tables.RunStep],
    tools: ToolRegistry,
    gathered: Gathered,
    max_tool_rounds: int,
    late_system: bool = True,
) -> GenerationRequest:
    """The generation request for the run's next model round (`late_system`: whether the engine takes a system
    message after the conversation's first).

    What the tools gathered for this run (file_search's passages) goes just before the thread's newest message
    once the thread has more than one, not into the instructions: the prompt then begins as the thread's
    previous run's did, and an engine's prompt cache serves that beginning."""
    thread = [{"role": message.role, "content": _text_of(message)} for message in messages]
    thread, left = _placed(thread, "\n\n".join(gathered.system), late_system)
    system = _system(run, left)
    conversation = ([{"role": "system", "content": system}] if system else []) + thread
    turns, rounds = tools.history(steps)
    return GenerationRequest(
        messages=conversation + turns,
        max_tokens=run.max_completion_tokens,
        temperature=run.temperature,
        top_p=run.top_p,
        response_format=run.response_format if run.response_format not in (None, "auto") else None,
        **tools.declare(run, rounds, max_tool_rounds),
    )


async def fitted(run: tables.Run, engine: TextEngine, request: GenerationRequest) -> GenerationRequest | None:
    """`request` without its oldest messages until it fits the context (leaving room for the answer) and
    `max_prompt_tokens`; None when that limit cannot be met."""
    request, tokens = await fit(engine, request, budget(run, engine))
    if run.max_prompt_tokens and tokens is not None and tokens > run.max_prompt_tokens:
        return None
    return request
