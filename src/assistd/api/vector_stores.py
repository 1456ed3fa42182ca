"""/v1/vector_stores: stores, search, their files (/files) and file batches (/file_batches)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from assistd.api.deps import Caller, IdempotencyKey, ServicesDep
from assistd.api.documented import ERRORS, returns
from assistd.api.pagination import list_envelope, page_params
from assistd.lifecycle import FileStatus
from assistd.protocol.common import ListPage, VectorStoreDeleted, VectorStoreFileDeleted
from assistd.protocol.files import FileBatch, FileContentPage, SearchResultsPage, VectorStore, VectorStoreFile
from assistd.schemas.vector_stores import (
    FileBatchCreate,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileUpdate,
    VectorStoreSearch,
    VectorStoreUpdate,
)
from assistd.store.pagination import PageRequest

router = APIRouter(prefix="/v1/vector_stores", tags=["vector stores"], responses=ERRORS)

StoresPage = Annotated[PageRequest, Depends(page_params("vector_store"))]
FilesPage = Annotated[PageRequest, Depends(page_params("file"))]
StatusFilter = Annotated[FileStatus | None, Query(alias="filter", description="Only files with this status.")]


@router.post("", **returns(VectorStore))
async def create_vector_store(
    body: VectorStoreCreate, caller: Caller, services: ServicesDep, key: IdempotencyKey = None
) -> dict[str, Any]:
    return await services.vector_stores.create(caller, body, key)


@router.get("", **returns(ListPage[VectorStore]))
async def list_vector_stores(caller: Caller, services: ServicesDep, page: StoresPage) -> dict[str, Any]:
    return list_envelope(await services.vector_stores.list(caller, page))


@router.get("/{vector_store_id}", **returns(VectorStore))
async def retrieve_vector_store(vector_store_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.vector_stores.retrieve(caller, vector_store_id)


@router.post("/{vector_store_id}", **returns(VectorStore))
async def modify_vector_store(
    vector_store_id: str, body: VectorStoreUpdate, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.modify(caller, vector_store_id, body)


@router.delete("/{vector_store_id}", **returns(VectorStoreDeleted))
async def delete_vector_store(vector_store_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.vector_stores.delete(caller, vector_store_id)


@router.post("/{vector_store_id}/search", **returns(SearchResultsPage))
async def search_vector_store(
    vector_store_id: str, body: VectorStoreSearch, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.search(caller, vector_store_id, body)


@router.post("/{vector_store_id}/files", **returns(VectorStoreFile))
async def create_vector_store_file(
    vector_store_id: str, body: VectorStoreFileCreate, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.add_file(caller, vector_store_id, body)


@router.get("/{vector_store_id}/files", **returns(ListPage[VectorStoreFile]))
async def list_vector_store_files(
    vector_store_id: str, caller: Caller, services: ServicesDep, page: FilesPage, status: StatusFilter = None
) -> dict[str, Any]:
    return list_envelope(await services.vector_stores.list_files(caller, vector_store_id, page, status))


@router.get("/{vector_store_id}/files/{file_id}", **returns(VectorStoreFile))
async def retrieve_vector_store_file(
    vector_store_id: str, file_id: str, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.retrieve_file(caller, vector_store_id, file_id)


@router.post("/{vector_store_id}/files/{file_id}", **returns(VectorStoreFile))
async def update_vector_store_file(
    vector_store_id: str, file_id: str, body: VectorStoreFileUpdate, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.update_file(caller, vector_store_id, file_id, body)


@router.delete("/{vector_store_id}/files/{file_id}", **returns(VectorStoreFileDeleted))
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.remove_file(caller, vector_store_id, file_id)


@router.get("/{vector_store_id}/files/{file_id}/content", **returns(FileContentPage))
async def vector_store_file_content(
    vector_store_id: str, file_id: str, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.file_content(caller, vector_store_id, file_id)


@router.post("/{vector_store_id}/file_batches", **returns(FileBatch))
async def create_file_batch(
    vector_store_id: str, body: FileBatchCreate, caller: Caller, services: ServicesDep, key: IdempotencyKey = None
) -> dict[str, Any]:
    return await services.vector_stores.create_batch(caller, vector_store_id, body, key)


@router.get("/{vector_store_id}/file_batches/{batch_id}", **returns(FileBatch))
async def retrieve_file_batch(
    vector_store_id: str, batch_id: str, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.retrieve_batch(caller, vector_store_id, batch_id)


@router.post("/{vector_store_id}/file_batches/{batch_id}/cancel", **returns(FileBatch))
async def cancel_file_batch(
    vector_store_id: str, batch_id: str, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.vector_stores.cancel_batch(caller, vector_store_id, batch_id)


@router.get("/{vector_store_id}/file_batches/{batch_id}/files", **returns(ListPage[VectorStoreFile]))
async def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    caller: Caller,
    services: ServicesDep,
    page: FilesPage,
    status: StatusFilter = None,
) -> dict[str, Any]:
    return list_envelope(await services.vector_stores.list_files(caller, vector_store_id, page, status, batch_id))
