"""The vector stores and files that assistants, threads and messages name for their tools.

tool_resources name stores (or describe new ones) and code_interpreter files; files attached to messages for
file_search go into their thread's own vector store. Every store and file named must be the project's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.errors import NotFound
from assistd.schemas.common import ToolResources
from assistd.schemas.vector_stores import VectorStoreExpiresAfter, VectorStoreFileCreate
from assistd.services.serialize import to_stored
from assistd.services.vector_stores import add_files, create_store, require_files
from assistd.store import tables
from assistd.store.repositories import ThreadRepository, VectorStoreRepository

THREAD_STORE_EXPIRY = VectorStoreExpiresAfter(anchor="last_active_at", days=7)


async def resolve_tool_resources(
    session: AsyncSession, project_id: str, resources: ToolResources | None
) -> dict[str, Any] | None:
    """tool_resources as stored: a `file_search.vector_stores` entry becomes a new store, kept by its id; the
    stores and code_interpreter files named must be the project's (404 otherwise)."""
    if resources is not None and resources.code_interpreter is not None:
        await require_files(session, project_id, resources.code_interpreter.file_ids)
    stored = to_stored(resources)
    search = (stored or {}).get("file_search")
    if resources is None or resources.file_search is None or search is None:
        return stored
    search.pop("vector_stores", None)
    named = resources.file_search.vector_store_ids
    found = {store.id for store in await VectorStoreRepository(session, project_id).get_many(named)}
    for store_id in named:
        if store_id not in found:
            raise NotFound.for_object("vector store", store_id)
    for spec in resources.file_search.vector_stores:
        store = await create_store(
            session,
            project_id,
            file_ids=spec.file_ids,
            chunking_strategy=spec.chunking_strategy,
            metadata=spec.metadata,
        )
        search["vector_store_ids"] = [*search.get("vector_store_ids", []), store.id]
    return stored


async def index_attachments(
    session: AsyncSession, project_id: str, thread_id: str, messages: Sequence[tables.Message]
) -> bool:
    """Files attached to messages for file_search go into the thread's vector store, made on first use (expiring
    7 days after its last use, as OpenAI's do). Every file a message names (attachments, image_file parts) must be
    the project's (404 otherwise). True when files were queued for ingestion."""
    await require_files(session, project_id, _named_files(messages))
    file_ids = [
        attachment["file_id"]
        for message in messages
        for attachment in message.attachments or []
        if any(tool.get("type") == "file_search" for tool in attachment.get("tools") or [])
    ]
    if not file_ids:
        return False
    thread = await ThreadRepository(session, project_id).get(thread_id)
    if thread is None:
        raise NotFound.for_object("thread", thread_id)
    resources = dict(thread.tool_resources or {})
    named = (resources.get("file_search") or {}).get("vector_store_ids") or []
    existing = [store.id for store in await VectorStoreRepository(session, project_id).get_many(named)]
    if existing:
        await add_files(session, project_id, existing[0], [VectorStoreFileCreate(file_id=f) for f in file_ids])
    else:
        store = await create_store(
            session, project_id, name=f"Files of {thread.id}", file_ids=file_ids, expires_after=THREAD_STORE_EXPIRY
        )
        resources["file_search"] = {**(resources.get("file_search") or {}), "vector_store_ids": [store.id]}
        thread.tool_resources = resources
    return True


def _named_files(messages: Sequence[tables.Message]) -> list[str]:
    """The ids of every file the messages name: their attachments' and their image_file parts'."""
    attached = [attachment["file_id"] for message in messages for attachment in message.attachments or []]
    return attached + [
        block["image_file"]["file_id"]
        for message in messages
        for block in message.content or []
        if block.get("type") == "image_file"
    ]
