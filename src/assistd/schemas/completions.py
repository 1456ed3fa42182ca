"""Request body of POST /v1/completions (and the legacy /v1/engines/{engine}/completions)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from assistd.schemas.chat import MAX_CHOICES, MAX_STOP, ModelName, Penalty, StreamOptions
from assistd.schemas.common import RequestModel, Temperature, TopP

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for legacy completions
DEFAULT_PROMPT = "<|endoftext|>"  # OpenAI's default: the start of a new document


class CompletionCreate(RequestModel):
    model: ModelName | None = None  # required on /v1/completions; the path names it on /v1/engines/...
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=64)] = DEFAULT_PROMPT
    max_tokens: Annotated[int, Field(ge=1)] | None = DEFAULT_MAX_TOKENS
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: Annotated[int, Field(ge=1, le=MAX_CHOICES)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP)] | None = None
    echo: bool | None = None
    seed: int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    best_of: Literal[1] | None = None
    logprobs: None = None
    suffix: None = None
    user: str | None = None

    def prompts(self) -> list[str]:
        """The prompts to complete; an empty one is a new document, as the default prompt is (a model cannot
        sample after no token at all)."""
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        return [prompt or DEFAULT_PROMPT for prompt in prompts]
