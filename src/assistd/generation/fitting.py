"""Fitting a prompt to a model: the budget of prompt tokens, and dropping the oldest turns until it fits."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from assistd.engines.base import GenerationRequest, TextEngine

ANSWER_ROOM_TOKENS = 512  # kept free for the answer when old messages must go
TRUNCATION_STEP = 8  # messages dropped at a time when a conversation no longer fits


def prompt_budget(context: int | None, max_prompt: int | None, max_answer: int | None) -> int | None:
    """The most prompt tokens a generation may use: the context less room for the answer, and `max_prompt`."""
    room = min(max_answer or ANSWER_ROOM_TOKENS, context // 4) if context else 0
    budgets = [limit for limit in (max_prompt, context - room if context else None) if limit]
    return min(budgets) if budgets else None


async def fit(
    engine: TextEngine, request: GenerationRequest, budget: int | None, step: int = TRUNCATION_STEP
) -> tuple[GenerationRequest, int | None]:
    """`request` without its oldest messages (never the system message, never the last message, never a tool
    result without its call) until its prompt fits `budget`; with the prompt's tokens (None when the engine
    cannot count them).

    Messages go `step` at a time: the cut moves only when the conversation has grown by about `step` messages,
    so the prompts of a growing thread keep one beginning between moves, and an engine's prompt cache serves it."""
    original = request.messages or []
    if budget is None:
        return request, None
    first = 1 if original and original[0]["role"] == "system" else 0
    messages, dropped = list(original), 0
    while (tokens := await engine.count_prompt_tokens(replace(request, messages=messages))) is not None:
        if tokens <= budget or len(messages) - first <= 1:
            break
        dropped = min(dropped + step - dropped % step, len(original) - first - 1)
        messages = _without_oldest(list(original), first, dropped)
    return replace(request, messages=messages), tokens


def _without_oldest(messages: list[dict[str, Any]], first: int, count: int) -> list[dict[str, Any]]:
    """`messages` without the `count` after `first`, nor the tool results left at the front without their call."""
    del messages[first : first + count]
    while len(messages) - first > 1 and messages[first]["role"] == "tool":
        del messages[first]
    return messages
