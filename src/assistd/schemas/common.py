"""Pieces shared by several request models: metadata, tools, tool resources, response formats."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from assistd import languages

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_NAME = 256
MAX_DESCRIPTION = 512
MAX_INSTRUCTIONS = 256_000
MAX_TOOLS = 128


MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1  # what a database integer column holds
# Free-form JSON (schemas, function parameters) nested deeper than this is refused: the serializer gives up at 255
# levels and Python's recursion at about 1,000, and no schema the grammar can enforce is nested half as deep.
MAX_JSON_DEPTH = 200
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's "\\udfff" alone: no character, unencodable


def require_storable(value: Any, _depth: int = 0) -> Any:
    """Text and numbers anywhere in `value` must be storable: no NUL (PostgreSQL cannot store it; no text needs
    it), no unpaired UTF-16 surrogate (not a character: it cannot be written as UTF-8), no integer beyond 64 bits,
    no NaN or infinity (JSON has none), and no nesting deeper than MAX_JSON_DEPTH."""
    if _depth > MAX_JSON_DEPTH:
        raise ValueError(f"Values may be nested at most {MAX_JSON_DEPTH} levels deep.")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("Text cannot contain the NUL character (\\u0000).")
        if (surrogate := _UNPAIRED_SURROGATE.search(value)) is not None:
            raise ValueError(f"Text cannot contain an unpaired UTF-16 surrogate (\\u{ord(surrogate.group()):04x}).")
    elif isinstance(value, int):
        if not MIN_INTEGER <= value <= MAX_INTEGER:
            raise ValueError(f"Integers must lie between {MIN_INTEGER} and {MAX_INTEGER}.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("Numbers must be finite (JSON has no NaN or Infinity).")
    elif isinstance(value, dict):
        for key, item in value.items():
            require_storable(key)
            require_storable(item, _depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            require_storable(item, _depth + 1)
    elif isinstance(value, BaseModel):  # a nested model: its fields, validated already
        require_storable(dict(value), _depth)
    return value


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are an error, as OpenAI's API does; what no store can keep
    (NUL, unpaired surrogates, integers beyond 64 bits) is refused before anything is written."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _only_storable(cls, value: Any) -> Any:
        return require_storable(value)


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return value
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(f"metadata may have at most {MAX_METADATA_PAIRS} pairs")
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise ValueError(f"metadata keys may be at most {MAX_METADATA_KEY} characters")
        if len(item) > MAX_METADATA_VALUE:
            raise ValueError(f"metadata values may be at most {MAX_METADATA_VALUE} characters")
    return value


Metadata = Annotated[dict[str, str] | None, AfterValidator(_check_metadata)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
Instructions = Annotated[str, StringConstraints(max_length=MAX_INSTRUCTIONS)]
Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(ge=0, le=1)]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _check_language(value: str | None) -> str | None:
    if value is not None and not languages.is_valid(value):
        raise ValueError("response_language must be a language code or name (letters, spaces, hyphens; 1-64)")
    return value


# assistd extension: the language the model answers in (an ISO 639-1 code such as "fr", or a name)
ResponseLanguage = Annotated[str | None, AfterValidator(_check_language)]
# assistd extension: the app preset an assistant behaves as (`assistd apps list`); its service checks the name
AppName = Annotated[str | None, StringConstraints(min_length=1, max_length=64)]


class FunctionDefinition(RequestModel):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(RequestModel):
    type: Literal["function"]
    function: FunctionDefinition


class RankingOptions(RequestModel):
    score_threshold: Annotated[float, Field(ge=0, le=1)]
    ranker: Literal["auto", "default_2024_08_21"] | None = None


class FileSearchOptions(RequestModel):
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: RankingOptions | None = None


class FileSearchTool(RequestModel):
    type: Literal["file_search"]
    file_search: FileSearchOptions | None = None


class CodeInterpreterTool(RequestModel):
    type: Literal["code_interpreter"]


Tool = Annotated[FunctionTool | FileSearchTool | CodeInterpreterTool, Field(discriminator="type")]
Tools = Annotated[list[Tool], Field(max_length=MAX_TOOLS)]


class CodeInterpreterResources(RequestModel):
    file_ids: Annotated[list[ObjectId], Field(max_length=20)] = []


class StaticChunking(RequestModel):
    max_chunk_size_tokens: Annotated[int, Field(ge=100, le=4096)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class AutoChunkingStrategy(RequestModel):
    type: Literal["auto"]


class StaticChunkingStrategy(RequestModel):
    type: Literal["static"]
    static: StaticChunking


ChunkingStrategy = Annotated[AutoChunkingStrategy | StaticChunkingStrategy, Field(discriminator="type")]


class NewVectorStore(RequestModel):
    """A vector store to create along with an assistant or thread (`tool_resources.file_search.vector_stores`)."""

    file_ids: Annotated[list[ObjectId], Field(max_length=10_000)] = []
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata = None


class FileSearchResources(RequestModel):
    vector_store_ids: Annotated[list[ObjectId], Field(max_length=1)] = []
    vector_stores: Annotated[list[NewVectorStore], Field(max_length=1)] = []

    @model_validator(mode="after")
    def _one_store(self) -> FileSearchResources:
        if self.vector_store_ids and self.vector_stores:
            raise ValueError("give vector_store_ids or vector_stores, not both (one vector store at most)")
        return self


class ToolResources(RequestModel):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class ResponseFormatText(RequestModel):
    type: Literal["text"]


class ResponseFormatJSONObject(RequestModel):
    type: Literal["json_object"]


class JSONSchemaSpec(RequestModel):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class ResponseFormatJSONSchema(RequestModel):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = (
    Literal["auto"]
    | Annotated[ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema, Field(discriminator="type")]
)

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
