"""Files, vector stores, their files and file batches, search results and a stored file's text."""

from __future__ import annotations

from typing import Any, Literal

from assistd.lifecycle import FileStatus, VectorStoreStatus
from assistd.protocol.common import Metadata, WireModel, extension, omitted

Attributes = dict[str, str | float | bool]


class File(WireModel):
    """An uploaded file; never `status_details` (deprecated, and typed as a string)."""

    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"]
    expires_at: int = omitted("When the file expires; absent for a file that does not.")


class FileCounts(WireModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStoreExpiresAfter(WireModel):
    anchor: Literal["last_active_at"]
    days: int


class VectorStore(WireModel):
    id: str
    object: Literal["vector_store"]
    created_at: int
    name: str
    description: str | None = extension("The store's description, as it was created or modified, or null.")
    usage_bytes: int
    file_counts: FileCounts
    status: VectorStoreStatus
    expires_at: int | None
    last_active_at: int
    metadata: Metadata
    expires_after: VectorStoreExpiresAfter = omitted("The expiration policy; absent for a store without one.")


class VectorStoreFile(WireModel):
    id: str
    object: Literal["vector_store.file"]
    created_at: int
    vector_store_id: str
    status: FileStatus
    last_error: dict[str, str] | None
    usage_bytes: int
    attributes: Attributes
    chunking_strategy: dict[str, Any]


class FileBatch(WireModel):
    id: str
    object: Literal["vector_store.files_batch"]
    created_at: int
    vector_store_id: str
    status: FileStatus
    file_counts: FileCounts


class TextContent(WireModel):
    type: Literal["text"]
    text: str


class SearchResult(WireModel):
    file_id: str
    filename: str
    score: float
    attributes: Attributes
    content: list[TextContent]


class SearchResultsPage(WireModel):
    """The passages a vector store search found (one page: `next_page` is always null)."""

    object: Literal["vector_store.search_results.page"]
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool
    next_page: str | None


class FileContentPage(WireModel):
    """A vector store file's text as the store parsed it (one page)."""

    object: Literal["vector_store.file_content.page"]
    data: list[TextContent]
    has_more: bool
    next_page: str | None
