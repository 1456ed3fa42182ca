"""Messages of a thread: create, list (optionally by run), retrieve, modify, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.clock import now
from assistd.errors import InvalidRequest, NotFound
from assistd.ids import new_id
from assistd.lifecycle import MessageStatus
from assistd.protocol import wire
from assistd.schemas.messages import MessageCreate, MessageUpdate
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.principal import Principal
from assistd.services.serialize import to_stored
from assistd.services.tool_resources import index_attachments
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import MessageRepository, ThreadRepository


def content_blocks(content: str | list[Any]) -> list[dict[str, Any]]:
    """A message's content as given (a string or parts) → the stored list of content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    blocks = []
    for part in content:
        if part.type == "text":
            blocks.append({"type": "text", "text": {"value": part.text, "annotations": []}})
        else:
            blocks.append(to_stored(part))
    return blocks


def new_message_row(thread_id: str, body: MessageCreate, created_at: int) -> tables.Message:
    """A user-supplied message (on its own or among a new thread's first messages)."""
    return tables.Message(
        id=new_id("message"),
        thread_id=thread_id,
        created_at=created_at,
        role=body.role,
        content=content_blocks(body.content),
        attachments=to_stored(body.attachments),
        metadata_=body.metadata or {},
        status=MessageStatus.COMPLETED,
    )


async def require_thread(session: AsyncSession, principal: Principal, thread_id: str) -> tables.Thread:
    """The caller's thread, or NotFound."""
    thread = await ThreadRepository(session, principal.project_id).get(thread_id)
    if thread is None:
        raise NotFound.for_object("thread", thread_id)
    return thread


async def thread_active_run(session: AsyncSession, principal: Principal, thread_id: str) -> str | None:
    """NotFound unless the caller has the thread; the id of its active run, if it has one."""
    exists, active = await ThreadRepository(session, principal.project_id).active_run(thread_id)
    if not exists:
        raise NotFound.for_object("thread", thread_id)
    return active


async def check_thread(session: AsyncSession, principal: Principal, thread_id: str) -> None:
    """NotFound unless the caller has the thread (without loading it)."""
    if not await ThreadRepository(session, principal.project_id).exists(thread_id):
        raise NotFound.for_object("thread", thread_id)


class MessageService:
    def __init__(self, db: Database, wake: Callable[[], None]) -> None:
        self.db = db
        self.wake = wake

    async def create(
        self, principal: Principal, thread_id: str, body: MessageCreate, idempotency_key: Idempotency | None = None
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            active = await thread_active_run(session, principal, thread_id)
            messages = MessageRepository(session, principal.project_id)
            if (earlier := await replayed(session, idempotency_key, messages)) is not None:
                return wire.message(earlier)
            if active is not None:
                raise InvalidRequest(
                    f"Can't add messages to {thread_id} while a run {active} is active.",
                    param="thread_id",
                    code="run_active",
                )
            row = await messages.insert(new_message_row(thread_id, body, now()))
            queued = await index_attachments(session, principal.project_id, thread_id, [row])
            await remember(session, idempotency_key, principal.project_id, row)
        if queued:
            self.wake()
        return wire.message(row)

    async def list(
        self, principal: Principal, thread_id: str, request: PageRequest, run_id: str | None = None
    ) -> Page[dict[str, Any]]:
        filters = {"thread_id": thread_id} if run_id is None else {"thread_id": thread_id, "run_id": run_id}
        async with self.db.read() as session:
            page = await MessageRepository(session, principal.project_id).page(request, **filters)
            if not page.items:  # only an empty page may mean the thread is not the caller's
                await check_thread(session, principal, thread_id)
        return Page([wire.message(row) for row in page.items], page.has_more)

    async def retrieve(self, principal: Principal, thread_id: str, message_id: str) -> dict[str, Any]:
        async with self.db.read() as session:
            await check_thread(session, principal, thread_id)
            row = await MessageRepository(session, principal.project_id).get(message_id, thread_id=thread_id)
        if row is None:
            raise NotFound.for_object("message", message_id)
        return wire.message(row)

    async def modify(
        self, principal: Principal, thread_id: str, message_id: str, body: MessageUpdate
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            await check_thread(session, principal, thread_id)
            row = await MessageRepository(session, principal.project_id).get(message_id, thread_id=thread_id)
            if row is None:
                raise NotFound.for_object("message", message_id)
            if "metadata" in body.model_fields_set:
                row.metadata_ = body.metadata or {}
        return wire.message(row)

    async def delete(self, principal: Principal, thread_id: str, message_id: str) -> dict[str, Any]:
        async with self.db.write() as session:
            await check_thread(session, principal, thread_id)
            deleted = await MessageRepository(session, principal.project_id).delete(
                message_id, tables.Message.thread_id == thread_id
            )
        if not deleted:
            raise NotFound.for_object("message", message_id)
        return wire.deleted(message_id, "thread.message")
