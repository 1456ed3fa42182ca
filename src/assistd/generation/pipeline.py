"""The stages every generation goes through, whatever API asked for it: resolve the model and the strategy of
its app preset, then stream the engine's answer while collecting it. Chat completions use them as they are;
runs (runtime/executor.py) put their own stages around them: tool context, the thread's prompt, recording."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from assistd.apps.strategies import Strategy, strategy_for
from assistd.engines.base import Chunk, GenerationRequest, TextEngine
from assistd.engines.registry import ModelRegistry
from assistd.generation.collect import Collected


@dataclass(frozen=True)
class Resolved:
    """The engine a generation uses (wrapped by its strategy) and the strategy itself."""

    engine: TextEngine
    strategy: Strategy


def resolve(registry: ModelRegistry, model: str, app: str | None = None) -> Resolved:
    """The engine serving `model` (a 404 for an unknown model) as the strategy of the app preset `app` uses it."""
    strategy = strategy_for(app)
    return Resolved(strategy.engine(registry.text(model)), strategy)


async def stream(engine: TextEngine, request: GenerationRequest, collected: Collected) -> AsyncIterator[Chunk]:
    """The engine's chunks for `request`, each added to `collected` as it passes."""
    async for chunk in engine.stream(request):
        collected.add(chunk)
        yield chunk


async def collect(engine: TextEngine, request: GenerationRequest) -> Collected:
    """The whole answer to `request`."""
    collected = Collected()
    async for _ in stream(engine, request, collected):
        pass
    return collected
