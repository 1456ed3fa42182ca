"""/v1/files: multipart upload (spooled to disk as it arrives), list, retrieve, content, delete."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from assistd.api.deps import Caller, IdempotencyKey, ServicesDep
from assistd.api.documented import ERRORS, returns
from assistd.api.pagination import list_envelope, page_params
from assistd.errors import InvalidRequest
from assistd.protocol.common import FileDeleted, ListPage
from assistd.protocol.files import File
from assistd.schemas.files import PURPOSES, FileExpiresAfter, FilePurpose
from assistd.store.pagination import PageRequest

router = APIRouter(prefix="/v1/files", tags=["files"], responses=ERRORS)

MAX_FILES_LIST = 10_000
MAX_FORM_FIELDS = 8


@router.post(
    "",
    **returns(File),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string", "enum": list(PURPOSES)},
                        },
                    }
                }
            },
        }
    },
)
async def upload_file(
    request: Request, caller: Caller, services: ServicesDep, key: IdempotencyKey = None
) -> dict[str, Any]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("Upload the file as multipart/form-data with fields 'file' and 'purpose'.", param="file")
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except Exception as exc:  # the multipart parser raises its own errors for malformed bodies
        if getattr(exc, "status_code", None) in (408, 413):
            raise
        raise InvalidRequest(f"The multipart body could not be read: {exc}", param="file") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        purpose = form.get("purpose")
        if not isinstance(purpose, str):
            raise InvalidRequest(
                "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        expires_after = _expires_after(form.get("expires_after[anchor]"), form.get("expires_after[seconds]"))
        return await services.files.create(
            caller, upload.filename or "", upload.file, purpose, expires_after, idempotency_key=key
        )

    finally:
        await form.close()


def _expires_after(anchor: Any, seconds: Any) -> FileExpiresAfter | None:
    if anchor is None and seconds is None:
        return None
    try:
        return FileExpiresAfter(anchor=anchor, seconds=seconds)
    except ValidationError as exc:
        raise InvalidRequest(
            "Invalid 'expires_after': anchor must be 'created_at' and seconds 3600 to 2592000.",
            param="expires_after",
            code="invalid_value",
        ) from exc


@router.get("", **returns(ListPage[File]))
async def list_files(
    caller: Caller,
    services: ServicesDep,
    page: Annotated[PageRequest, Depends(page_params("file", MAX_FILES_LIST, MAX_FILES_LIST))],
    purpose: FilePurpose | None = Query(None, description="Only files of this purpose."),
) -> dict[str, Any]:
    return list_envelope(await services.files.list(caller, page, purpose))


@router.get("/{file_id}", **returns(File))
async def retrieve_file(file_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.files.retrieve(caller, file_id)


@router.get("/{file_id}/content", response_class=StreamingResponse)
async def file_content(file_id: str, caller: Caller, services: ServicesDep) -> StreamingResponse:
    row, blocks = await services.files.content(caller, file_id)
    headers = {"content-length": str(row.bytes), "content-disposition": _attachment(row.filename)}
    return StreamingResponse(blocks, media_type="application/octet-stream", headers=headers)


def _attachment(filename: str) -> str:
    """Content-Disposition for a download named `filename` (RFC 6266; RFC 5987 encoding when it needs any)."""
    quoted = quote(filename)
    return f'attachment; filename="{filename}"' if quoted == filename else f"attachment; filename*=utf-8''{quoted}"


@router.delete("/{file_id}", **returns(FileDeleted))
async def delete_file(file_id: str, caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return await services.files.delete(caller, file_id)
