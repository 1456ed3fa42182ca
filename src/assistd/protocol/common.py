"""What every wire model shares: the base class, extension and omitted fields, usage, lists, deletions, errors."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

EXTENSION = "x-assistd-extension"  # marks, in our OpenAPI schemas, a field that OpenAI's object does not have

Metadata = dict[str, str]


class WireModel(BaseModel):
    """An object as assistd sends it: exactly these fields, in this order (the order of protocol/wire.py's
    builders). A field typed without None but defaulting to None is left out when it has no value."""

    model_config = ConfigDict(extra="forbid")


def extension(description: str, default: Any = ...) -> Any:
    """A field of assistd's own, which OpenAI's object lacks (marked `x-assistd-extension` in the schema)."""
    return Field(default, description=description, json_schema_extra={EXTENSION: True})


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted(description: str) -> Any:
    """A field sent only when it has a value: absent, never null, otherwise."""
    return Field(None, description=description, json_schema_extra=_no_default)


class PromptTokensDetails(WireModel):
    cached_tokens: int = Field(description="Prompt tokens taken from the engine's prompt cache, not evaluated.")


class Usage(WireModel):
    """Token counts of a chat or legacy completion."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class RunUsage(WireModel):
    """Token counts of a run or a run step: OpenAI's, and the cached prompt tokens as chat completions show them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = extension(
        "As on chat completions; absent on runs stored before assistd reported it.", default=None
    )


Item = TypeVar("Item", bound=BaseModel)


class ListPage(WireModel, Generic[Item]):
    """A page of a list (`limit`, `order`, `after`, `before`); the ids are null on an empty page."""

    object: Literal["list"]
    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool


class Deleted(WireModel):
    """The answer to a deletion."""

    id: str
    object: str
    deleted: bool


class AssistantDeleted(Deleted):
    object: Literal["assistant.deleted"]


class ThreadDeleted(Deleted):
    object: Literal["thread.deleted"]


class MessageDeleted(Deleted):
    object: Literal["thread.message.deleted"]


class FileDeleted(Deleted):
    object: Literal["file"]


class VectorStoreDeleted(Deleted):
    object: Literal["vector_store.deleted"]


class VectorStoreFileDeleted(Deleted):
    object: Literal["vector_store.file.deleted"]


class ErrorDetail(WireModel):
    """What went wrong: `param` names the request's field, `code` the kind of fault (both may be null)."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(WireModel):
    """Every error answer (4xx, 5xx), and an error in the middle of a stream."""

    error: ErrorDetail


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema (as it is sent) with its definitions written in place, for a schema that stands
    outside the OpenAPI components: the `data` of a stream's events."""
    schema = model.model_json_schema(mode="serialization")
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        resolved = {key: resolve(value) for key, value in node.items() if key != "$ref"}
        if "$ref" in node:  # what stands beside a reference (a description, the extension mark) stays
            return {**resolve(definitions[node["$ref"].rsplit("/", 1)[-1]]), **resolved}
        return resolved

    return resolve(schema)
