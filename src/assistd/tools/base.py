"""The interface every tool of runs implements, and what the executor lends a tool to record its work.

The executor calls the same hooks for every tool a run has and never names one:
- `gather` before generation: context for the prompt (file_search searches here and records its step);
- `history`: the tool's earlier calls in this run and their outputs, as conversation turns for the prompt;
- `declare`: what the model is offered (function definitions, the tool choice) in the next round;
- `take_calls`: the calls the model made to the tool (function calls go to the client: requires_action).
A hook a tool does not need keeps its default, which adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from assistd.engines.base import Usage
from assistd.store import tables


@dataclass(frozen=True)
class Citation:
    """Markers appended to an answer (e.g. " 【0†faq.md】") and the annotations that point at them."""

    marker: str
    annotations: list[dict[str, Any]]


@dataclass
class Gathered:
    """What tools found before generation: parts of the system prompt, and ways to cite them in the answer."""

    system: list[str] = field(default_factory=list)
    citers: list[Callable[[str], Citation | None]] = field(default_factory=list)

    def cite(self, answer: str) -> Citation | None:
        """The first citation a tool finds for `answer` (one tool cites at most one thing today)."""
        for citer in self.citers:
            if (citation := citer(answer)) is not None:
                return citation
        return None


class Recorder(Protocol):
    """The executor's recorder, as tools see it."""

    async def add_tool_step(self, run: tables.Run, calls: list[dict[str, Any]]) -> None:
        """Record a completed tool_calls step holding `calls`, and announce it."""

    async def require_action(self, run: tables.Run, calls: list[dict[str, Any]], usage: Usage) -> None:
        """Record a tool_calls step of `calls` (made in a model round of `usage`) and hand them to the client."""


class Tool:
    """A tool of runs. Subclasses set `type` (as in the run's `tools`) and override the hooks they need."""

    type: ClassVar[str]

    def offered(self, run: tables.Run) -> bool:
        """Whether the run has this tool."""
        return any(tool.get("type") == self.type for tool in run.tools)

    async def gather(
        self, run: tables.Run, steps: Sequence[tables.RunStep], recorder: Recorder, gathered: Gathered, room: int | None
    ) -> None:
        """Add to `gathered` what the model should know before it answers (`room`: characters it may take)."""

    def history(self, step: tables.RunStep) -> list[dict[str, Any]]:
        """The conversation turns of this tool's calls in `step` and their outputs (none by default)."""
        return []

    def declare(self, run: tables.Run, rounds: int, max_rounds: int) -> dict[str, Any]:
        """Fields of the generation request that offer this tool to the model after `rounds` rounds of calls."""
        return {}

    async def take_calls(
        self,
        run: tables.Run,
        calls: list[dict[str, Any]],
        usage: Usage,
        steps: Sequence[tables.RunStep],
        recorder: Recorder,
    ) -> bool:
        """Act on calls the model made to this tool (in a round of `usage`); False when none was worth acting on."""
        return False
