"""Request models for /v1/vector_stores, their files and file batches, and search, with OpenAI's limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from assistd.schemas.common import (
    AutoChunkingStrategy,
    ChunkingStrategy,
    Description,
    Metadata,
    ObjectId,
    RequestModel,
    StaticChunkingStrategy,
)

MAX_ATTRIBUTES = 16
MAX_FILES_PER_REQUEST = 2000
AUTO_CHUNK_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400


def resolve_chunking(strategy: AutoChunkingStrategy | StaticChunkingStrategy | None) -> dict[str, Any]:
    """The strategy as stored and shown on a vector store file: `auto` is reported as the static sizes it means."""
    if isinstance(strategy, StaticChunkingStrategy):
        return {"type": "static", "static": strategy.static.model_dump()}
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": AUTO_CHUNK_TOKENS, "chunk_overlap_tokens": AUTO_OVERLAP_TOKENS},
    }


def _check_attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return value
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"attributes may have at most {MAX_ATTRIBUTES} pairs")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError("attribute keys may be at most 64 characters")
        if isinstance(item, str) and len(item) > 512:
            raise ValueError("attribute string values may be at most 512 characters")
    return value


Attributes = Annotated[dict[str, str | bool | float] | None, AfterValidator(_check_attributes)]
FileIds = Annotated[list[ObjectId], Field(max_length=MAX_FILES_PER_REQUEST)]


class VectorStoreExpiresAfter(RequestModel):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


class VectorStoreCreate(RequestModel):
    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    description: Description | None = None
    file_ids: FileIds = []
    chunking_strategy: ChunkingStrategy | None = None
    expires_after: VectorStoreExpiresAfter | None = None
    metadata: Metadata = None


class VectorStoreUpdate(RequestModel):
    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    expires_after: VectorStoreExpiresAfter | None = None
    metadata: Metadata = None


class VectorStoreFileCreate(RequestModel):
    file_id: ObjectId
    attributes: Attributes = None
    chunking_strategy: ChunkingStrategy | None = None


class VectorStoreFileUpdate(RequestModel):
    attributes: Attributes


class FileBatchCreate(RequestModel):
    file_ids: FileIds | None = None
    files: Annotated[list[VectorStoreFileCreate], Field(max_length=MAX_FILES_PER_REQUEST)] | None = None
    attributes: Attributes = None
    chunking_strategy: ChunkingStrategy | None = None

    @model_validator(mode="after")
    def _one_list(self) -> FileBatchCreate:
        if (self.file_ids is None) == (self.files is None):
            raise ValueError("give exactly one of file_ids or files")
        if not (self.file_ids or self.files):
            raise ValueError("a file batch needs at least one file")
        return self

    def entries(self) -> list[VectorStoreFileCreate]:
        """One create per file: `files` as given, or `file_ids` with the batch's attributes and strategy."""
        if self.files is not None:
            return self.files
        return [
            VectorStoreFileCreate(file_id=file_id, attributes=self.attributes, chunking_strategy=self.chunking_strategy)
            for file_id in self.file_ids or []
        ]


FilterValue = str | bool | float | list[str | bool | float]  # bool before float: True must not become 1.0


class ComparisonFilter(RequestModel):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str
    value: FilterValue


class CompoundFilter(RequestModel):
    type: Literal["and", "or"]
    filters: Annotated[list[ComparisonFilter | CompoundFilter], Field(min_length=1)]


Filter = ComparisonFilter | CompoundFilter


class HybridSearchWeights(RequestModel):
    """assistd extension (as the file_search tool's ranking options have it): weights of the rank fusion."""

    embedding_weight: Annotated[float, Field(ge=0)]
    text_weight: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _not_both_zero(self) -> HybridSearchWeights:
        if self.embedding_weight == 0 and self.text_weight == 0:
            raise ValueError("embedding_weight and text_weight cannot both be 0")
        return self


class SearchRankingOptions(RequestModel):
    ranker: Literal["none", "auto", "default-2024-11-15", "default_2024_08_21"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    hybrid_search: HybridSearchWeights | None = None


Query = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class VectorStoreSearch(RequestModel):
    query: Query | Annotated[list[Query], Field(min_length=1, max_length=10)]
    filters: Filter | None = None
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    ranking_options: SearchRankingOptions | None = None
    rewrite_query: bool = False
