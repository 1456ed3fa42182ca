"""/v1/threads"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from assistd.api.deps import Caller, IdempotencyKey, ServicesDep
from assistd.api.documented import ERRORS, returns
from assistd.protocol.assistants import Thread
from assistd.protocol.common import ThreadDeleted
from assistd.schemas.threads import ThreadCreate, ThreadUpdate

router = APIRouter(prefix="/v1/threads", tags=["threads"], responses=ERRORS)


@router.post("", **returns(Thread))
async def create_thread(
    caller: Caller, services: ServicesDep, body: ThreadCreate | None = None, key: IdempotencyKey = None
) -> dict[str, Any]:
    return await services.threads.create(caller, body or ThreadCreate(), key)


@router.get("/{thread_id}", **returns(Thread))
async def retrieve_thread(thread_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.threads.retrieve(caller, thread_id)


@router.post("/{thread_id}", **returns(Thread))
async def modify_thread(thread_id: str, body: ThreadUpdate, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.threads.modify(caller, thread_id, body)


@router.delete("/{thread_id}", **returns(ThreadDeleted))
async def delete_thread(thread_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.threads.delete(caller, thread_id)
