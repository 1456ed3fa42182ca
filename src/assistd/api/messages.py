"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from assistd.api.deps import Caller, IdempotencyKey, ServicesDep
from assistd.api.documented import ERRORS, returns
from assistd.api.pagination import list_envelope, page_params
from assistd.protocol.assistants import Message
from assistd.protocol.common import ListPage, MessageDeleted
from assistd.schemas.messages import MessageCreate, MessageUpdate
from assistd.store.pagination import PageRequest

router = APIRouter(prefix="/v1/threads/{thread_id}/messages", tags=["messages"], responses=ERRORS)


@router.post("", **returns(Message))
async def create_message(
    thread_id: str, body: MessageCreate, caller: Caller, services: ServicesDep, key: IdempotencyKey = None
) -> dict[str, Any]:
    return await services.messages.create(caller, thread_id, body, key)


@router.get("", **returns(ListPage[Message]))
async def list_messages(
    thread_id: str,
    caller: Caller,
    services: ServicesDep,
    page: Annotated[PageRequest, Depends(page_params("message"))],
    run_id: Annotated[str | None, Query(max_length=64, description="Only messages made by this run.")] = None,
) -> dict[str, Any]:
    return list_envelope(await services.messages.list(caller, thread_id, page, run_id=run_id))


@router.get("/{message_id}", **returns(Message))
async def retrieve_message(thread_id: str, message_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.messages.retrieve(caller, thread_id, message_id)


@router.post("/{message_id}", **returns(Message))
async def modify_message(
    thread_id: str, message_id: str, body: MessageUpdate, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.messages.modify(caller, thread_id, message_id, body)


@router.delete("/{message_id}", **returns(MessageDeleted))
async def delete_message(thread_id: str, message_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.messages.delete(caller, thread_id, message_id)
