"""Threads: create (with first messages), retrieve, modify, delete (with their messages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.clock import now
from assistd.errors import NotFound
from assistd.ids import new_id
from assistd.protocol import wire
from assistd.schemas.common import ToolResources
from assistd.schemas.threads import ThreadCreate, ThreadUpdate
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.messages import new_message_row, require_thread
from assistd.services.principal import Principal
from assistd.services.tool_resources import index_attachments, resolve_tool_resources
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import MessageRepository, ThreadRepository


async def add_thread(
    session: AsyncSession, project_id: str, spec: ThreadCreate, tool_resources: ToolResources | None
) -> tuple[tables.Thread, bool]:
    """A new thread with its first messages (their attachments indexed), in the caller's transaction; the tool
    resources' references must be the project's. Also whether files may have been queued for ingestion."""
    created_at = now()
    thread = tables.Thread(
        id=new_id("thread"),
        created_at=created_at,
        metadata_=spec.metadata or {},
        tool_resources=await resolve_tool_resources(session, project_id, tool_resources),
    )
    await ThreadRepository(session, project_id).add(thread)
    files_queued = bool(tool_resources and tool_resources.file_search and tool_resources.file_search.vector_stores)
    if spec.messages:
        added = await MessageRepository(session, project_id).add_many(
            [new_message_row(thread.id, message, created_at) for message in spec.messages]
        )
        files_queued |= await index_attachments(session, project_id, thread.id, added)
    return thread, files_queued


class ThreadService:
    def __init__(self, db: Database, wake: Callable[[], None]) -> None:
        self.db = db
        self.wake = wake

    async def create(
        self, principal: Principal, body: ThreadCreate, idempotency_key: Idempotency | None = None
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            threads = ThreadRepository(session, principal.project_id)
            if (earlier := await replayed(session, idempotency_key, threads)) is not None:
                return wire.thread(earlier)
            thread, _ = await add_thread(session, principal.project_id, body, body.tool_resources)
            await remember(session, idempotency_key, principal.project_id, thread)
        self.wake()
        return wire.thread(thread)

    async def retrieve(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        async with self.db.read() as session:
            return wire.thread(await require_thread(session, principal, thread_id))

    async def modify(self, principal: Principal, thread_id: str, body: ThreadUpdate) -> dict[str, Any]:
        async with self.db.write() as session:
            thread = await require_thread(session, principal, thread_id)
            if "metadata" in body.model_fields_set:
                thread.metadata_ = body.metadata or {}
            if "tool_resources" in body.model_fields_set:
                thread.tool_resources = await resolve_tool_resources(session, principal.project_id, body.tool_resources)
        self.wake()
        return wire.thread(thread)

    async def delete(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        async with self.db.write() as session:
            if not await ThreadRepository(session, principal.project_id).delete(thread_id):
                raise NotFound.for_object("thread", thread_id)
        return wire.deleted(thread_id, "thread")
