"""The stages every generation goes through, whatever API asked for it: resolve the model and the strategy of
its app preset, then stream the engine's answer while collecting it. Chat completions use them as they are;
runs (runtime/executor.py) put their own stages around them: tool context, the thread's prompt, recording."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from assistd.apps.strategies import Strategy, strategy_for
from assistd.engines.base import Chunk, GenerationRequest, TextEngine
from assistd.engines.registry import ModelRegistry
from assistd.generation.collect import Collected

T = TypeVar("T")


@dataclass(frozen=True)
class Resolved:
    """The engine a generation uses (wrapped by its strategy) and the strategy itself."""

    engine: TextEngine
    strategy: Strategy


def resolve(registry: ModelRegistry, model: str, app: str | None = None) -> Resolved:
    """The engine serving `model` (a 404 for an unknown model) as the strategy of the app preset `app` uses it."""
    strategy = strategy_for(app)
    return Resolved(strategy.engine(registry.text(model)), strategy)


async def stream(engine: TextEngine, request: GenerationRequest, collected: Collected) -> AsyncGenerator[Chunk, None]:
    """The engine's chunks for `request`, each added to `collected` as it passes."""
    async for chunk in engine.stream(request):
        collected.add(chunk)
        yield chunk


async def alongside(chunks: AsyncGenerator[Chunk, None], work: Awaitable[T]) -> tuple[T, AsyncIterator[Chunk]]:
    """Start `chunks` (the engine takes the prompt) and await `work` meanwhile; its result, and the chunks from the
    first. An error of the engine's comes out of the chunks, as it would have; if `work` fails, the generation is
    stopped at once."""
    first = asyncio.ensure_future(anext(chunks, None))
    try:
        await asyncio.sleep(0)  # the engine goes first, to its first wait (its thread has the prompt), then `work`
        result = await work
    except BaseException:
        first.cancel()
        with contextlib.suppress(BaseException):
            await first
        with contextlib.suppress(BaseException):
            await chunks.aclose()
        raise

    async def from_the_first() -> AsyncIterator[Chunk]:
        chunk = await first
        while chunk is not None:
            yield chunk
            chunk = await anext(chunks, None)

    return result, from_the_first()


async def collect(engine: TextEngine, request: GenerationRequest) -> Collected:
    """The whole answer to `request`."""
    collected = Collected()
    async for _ in stream(engine, request, collected):
        pass
    return collected
