"""Chat completions (whole and streamed), legacy text completions, embeddings and the models list."""

from __future__ import annotations

from typing import Any, Literal

from assistd.protocol.common import Usage, WireModel, omitted


class FunctionCall(WireModel):
    name: str
    arguments: str


class ToolCall(WireModel):
    id: str | None
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(WireModel):
    role: Literal["assistant"]
    content: str | None
    refusal: None
    annotations: list[dict[str, Any]]
    tool_calls: list[ToolCall] = omitted("The function calls the model made; absent when it made none.")


class ChatChoice(WireModel):
    index: int
    message: ChatMessage
    logprobs: None
    finish_reason: str


class ChatCompletion(WireModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str
    service_tier: str
    choices: list[ChatChoice]
    usage: Usage


class FunctionCallDelta(WireModel):
    name: str = omitted("The function's name, in the call's first piece only.")
    arguments: str


class ToolCallDelta(WireModel):
    index: int
    id: str = omitted("The call's id, in its first piece only.")
    type: Literal["function"] = omitted("Always function, in the call's first piece only.")
    function: FunctionCallDelta


class ChatDelta(WireModel):
    """What a chunk adds to a choice: the first has the role (and empty content), the last nothing."""

    role: Literal["assistant"] = omitted("In a choice's first chunk only.")
    content: str = omitted("Text to append.")
    refusal: None = omitted("Null, in a choice's first chunk only.")
    tool_calls: list[ToolCallDelta] = omitted("Pieces of tool calls to append (by their index).")


class ChatChunkChoice(WireModel):
    index: int
    delta: ChatDelta
    logprobs: None
    finish_reason: str | None


class ChatCompletionChunk(WireModel):
    """One `data:` event of a streamed chat completion; with `stream_options.include_usage` every chunk has
    `usage`, null but in the last, whose `choices` is empty."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str
    service_tier: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = omitted("Only with stream_options.include_usage.")


class TextChoice(WireModel):
    text: str
    index: int
    logprobs: None
    finish_reason: str | None


class TextCompletion(WireModel):
    """A whole legacy completion."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[TextChoice]
    usage: Usage


class TextCompletionChunk(WireModel):
    """One `data:` event of a streamed legacy completion: a text_completion too, whose choices have
    `finish_reason` null until they end; with `stream_options.include_usage`, the last has `usage` and no
    choices."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[TextChoice]
    usage: Usage = omitted("Only in the last event, and only with stream_options.include_usage.")


class Embedding(WireModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingUsage(WireModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(WireModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class Model(WireModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(WireModel):
    object: Literal["list"]
    data: list[Model]
