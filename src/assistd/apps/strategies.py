"""How the runs of an app preset generate, beyond what their assistant's configuration says.

A run names its preset in its `app` field, copied from its assistant when the run is created (like the other
assistant settings); the executor asks `strategy_for(run.app)` and calls the same hooks for every run, so it
names no preset. A run of no preset, or of one that needs nothing more than its configuration (customer
service), gets the default strategy, which changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from assistd.apps.condense import Condensed, condense
from assistd.apps.presets import CUSTOMER_SERVICE, SUMMARIZER, TRANSLATOR
from assistd.apps.translate import ProtectedTranslation
from assistd.engines.base import GenerationRequest, TextEngine


@dataclass(frozen=True)
class Strategy:
    """The default: the run generates as configured; `answer_tokens` bounds an answer the run leaves unbounded."""

    answer_tokens: int | None = None

    def engine(self, engine: TextEngine) -> TextEngine:
        """The engine the run generates with."""
        return engine

    def bound_answer(self, request: GenerationRequest) -> GenerationRequest:
        """`request` with the strategy's longest answer when the run sets none (a cut there still completes)."""
        if request.max_tokens is None and self.answer_tokens:
            return replace(request, max_tokens=self.answer_tokens)
        return request

    async def fit(self, engine: TextEngine, request: GenerationRequest, budget: int | None) -> Condensed | None:
        """A request made to fit `budget` prompt tokens by the strategy's own means, or None (the executor's
        truncation applies)."""
        return None


@dataclass(frozen=True)
class CondenseLongInput(Strategy):
    """Summarise a text longer than the context part by part, then answer from the summaries."""

    async def fit(self, engine: TextEngine, request: GenerationRequest, budget: int | None) -> Condensed | None:
        return None if budget is None else await condense(engine, request, budget)


@dataclass(frozen=True)
class ProtectText(Strategy):
    """Translate with code, URLs and placeholders kept out of the model's reach and put back verbatim."""

    def engine(self, engine: TextEngine) -> TextEngine:
        return ProtectedTranslation(engine)


DEFAULT = Strategy()
STRATEGIES: dict[str, Strategy] = {
    CUSTOMER_SERVICE.name: Strategy(CUSTOMER_SERVICE.answer_tokens),
    SUMMARIZER.name: CondenseLongInput(SUMMARIZER.answer_tokens),
    TRANSLATOR.name: ProtectText(TRANSLATOR.answer_tokens),
}


def strategy_for(app: str | None) -> Strategy:
    """The strategy of the run's app preset (the default for none)."""
    return STRATEGIES.get(app, DEFAULT) if app else DEFAULT
