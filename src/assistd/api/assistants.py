"""/v1/assistants"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from assistd.api.deps import Caller, IdempotencyKey, ServicesDep
from assistd.api.documented import ERRORS, returns
from assistd.api.pagination import list_envelope, page_params
from assistd.protocol.assistants import Assistant
from assistd.protocol.common import AssistantDeleted, ListPage
from assistd.schemas.assistants import AssistantCreate, AssistantUpdate
from assistd.store.pagination import PageRequest

router = APIRouter(prefix="/v1/assistants", tags=["assistants"], responses=ERRORS)


@router.post("", **returns(Assistant))
async def create_assistant(
    body: AssistantCreate, caller: Caller, services: ServicesDep, key: IdempotencyKey = None
) -> dict[str, Any]:
    return await services.assistants.create(caller, body, key)


@router.get("", **returns(ListPage[Assistant]))
async def list_assistants(
    caller: Caller, services: ServicesDep, page: Annotated[PageRequest, Depends(page_params("assistant"))]
) -> dict[str, Any]:
    return list_envelope(await services.assistants.list(caller, page))


@router.get("/{assistant_id}", **returns(Assistant))
async def retrieve_assistant(assistant_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.assistants.retrieve(caller, assistant_id)


@router.post("/{assistant_id}", **returns(Assistant))
async def modify_assistant(
    assistant_id: str, body: AssistantUpdate, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.assistants.modify(caller, assistant_id, body)


@router.delete("/{assistant_id}", **returns(AssistantDeleted))
async def delete_assistant(assistant_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.assistants.delete(caller, assistant_id)
