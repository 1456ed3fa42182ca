"""The engine interface: what chat completions, legacy completions and runs ask of a model.

A text engine turns a GenerationRequest into an async stream of Chunks (text deltas, tool-call deltas, a
finish reason, usage). An embedding engine turns texts into vectors. Engines raise the typed errors of
assistd.errors (InvalidRequest for a prompt over the context, UpstreamError for a failed upstream), never
bare exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of the prompt's, taken from a cache rather than evaluated

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        """Two generations' tokens together (each evaluated its own prompt)."""
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )

    def answer_only(self) -> Usage:
        """The completion tokens alone: another answer to a prompt already counted (`n` > 1)."""
        return Usage(0, self.completion_tokens)


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of one tool call; `index` says which call it extends. `id` and `name` come in its first piece."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Chunk:
    """One step of a generation stream. The last chunk carries `finish_reason` and `usage`."""

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. Exactly one of `messages` (chat) and `prompt` (plain completion) is set.

    `messages` are OpenAI chat messages as plain dicts (roles system/developer/user/assistant/tool, content as
    a string or parts, assistant `tool_calls`). `tools` are OpenAI function tools as dicts. `response_format`
    is None, {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}.
    Sampling fields left None take the model's configured defaults.
    """

    messages: Sequence[dict[str, Any]] | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: Sequence[str] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: Sequence[dict[str, Any]] = ()
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    response_format: dict[str, Any] | None = None
    user: str | None = None
    prompt_cache_key: str | None = None  # a hint for engines that cache prompts by key (the local one needs none)

    @property
    def offers_tools(self) -> bool:
        """Whether the model may call a tool: tools are given and `tool_choice` is not "none"."""
        return bool(self.tools) and self.tool_choice != "none"


@dataclass(frozen=True)
class SchemaBounds:
    """How much work one request's schemas may ask for (settings `ASSISTD_SCHEMA_*`, docs/configuration.md)."""

    max_depth: int = 64
    # llama.cpp refuses grammars with much longer bounded repetitions
    max_repetition: int = 1_000
    # OpenAI's own enum limit; each value (or anyOf branch) is an alternative the sampler tries at every token
    max_enum_values: int = 1_000
    # subschemas in one request (OpenAI allows 5,000 object properties in all)
    max_subschemas: int = 10_000
    # llama.cpp holds a grammar in about 45 times its text: 2 MB is some 90 MB while it is used. Function
    # arguments cost most (each free-form string is held to MAX_ARGUMENT_STRING characters, ~1.7 KB of grammar).
    max_grammar_characters: int = 2_000_000


@runtime_checkable
class TextEngine(Protocol):
    """A model that generates text (and tool calls)."""

    model_id: str
    context_length: int
    # whether a system message after the conversation's first reaches the model as one (some chat templates
    # refuse it); where not, a run puts what it would say there into the next user message
    late_system_messages: bool

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Generate, yielding chunks as they come. Cancelling the iteration stops the generation."""
        ...

    async def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        """The prompt's size in this model's tokens, or None where the engine cannot tell before generating."""
        ...

    def check(self, request: GenerationRequest) -> None:
        """Raise InvalidRequest for tools or a response format this engine cannot hold the model to."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@runtime_checkable
class EmbeddingEngine(Protocol):
    """A model that turns texts into unit-length vectors of `dimensions` floats."""

    model_id: str
    dimensions: int
    max_input_tokens: int

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Vectors for `texts`, in order, and the number of input tokens counted."""
        ...

    async def close(self) -> None: ...
