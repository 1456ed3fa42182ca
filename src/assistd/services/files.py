"""Files: upload (bytes to the blob store, then the row), list, retrieve, download, delete."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from assistd.clock import now
from assistd.errors import InvalidRequest, NotFound, PayloadTooLarge
from assistd.ids import new_id
from assistd.protocol import wire
from assistd.schemas.common import require_storable
from assistd.schemas.files import PURPOSES, FileExpiresAfter
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.limits import LimitService
from assistd.services.principal import Principal
from assistd.store import tables
from assistd.store.blobs import BlobStore
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import FileRepository

MAX_FILENAME = 512


class FileService:
    def __init__(self, db: Database, blobs: BlobStore, max_upload_bytes: int, limits: LimitService) -> None:
        self.db = db
        self.blobs = blobs
        self.max_upload_bytes = max_upload_bytes
        self.limits = limits

    async def create(
        self,
        principal: Principal,
        filename: str,
        content: BinaryIO,
        purpose: str,
        expires_after: FileExpiresAfter | None = None,
        idempotency_key: Idempotency | None = None,
    ) -> dict[str, Any]:
        """Store an upload. The bytes are stored (durably) before the row that makes the file visible."""
        _require_purpose(purpose)
        filename = _clean_filename(filename)
        size = self._upload_size(content)
        async with self.db.read() as session:
            await self.limits.check_storage(session, principal, size)
        created = now()
        row = tables.File(
            id=new_id("file"),
            created_at=created,
            filename=filename,
            purpose=purpose,
            expires_at=created + expires_after.seconds if expires_after else None,
        )
        row.bytes, row.sha256 = await self.blobs.save(principal.project_id, row.id, content)
        if idempotency_key is not None:  # the upload's fingerprint: what it asks to store
            asked = f"{purpose}\n{filename}\n{row.expires_at}\n{row.sha256}"
            idempotency_key = replace(idempotency_key, fingerprint=hashlib.sha256(asked.encode()).hexdigest())
        return await self._insert(principal, row, idempotency_key)

    def _upload_size(self, content: BinaryIO) -> int:
        """The upload's size; an empty one or one over `max_upload_bytes` is refused."""
        size = content.seek(0, 2)
        if size == 0:
            raise InvalidRequest("The file is empty.", param="file", code="empty_file")
        if size > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is {size} bytes; the largest accepted is {self.max_upload_bytes}.",
                param="file",
                code="file_too_large",
            )
        return size

    async def _insert(
        self, principal: Principal, row: tables.File, idempotency_key: Idempotency | None
    ) -> dict[str, Any]:
        """Add the row of a file whose bytes are stored, or answer the earlier upload of a replay; the bytes just
        stored are deleted again when no row keeps them."""
        stored = False
        try:
            async with self.db.write() as session:
                files = FileRepository(session, principal.project_id)
                if (earlier := await replayed(session, idempotency_key, files)) is not None:
                    return wire.file(earlier)
                await files.add(row)
                await remember(session, idempotency_key, principal.project_id, row)
            stored = True
        finally:
            if not stored:  # a replay or a failed insert: the copy just written belongs to nothing
                await self.blobs.delete(principal.project_id, row.id)
        return wire.file(row)

    async def list(self, principal: Principal, request: PageRequest, purpose: str | None) -> Page[dict[str, Any]]:
        filters = {"purpose": purpose} if purpose else {}
        async with self.db.read() as session:
            page = await FileRepository(session, principal.project_id).page(request, **filters)
        return Page([wire.file(row) for row in page.items], page.has_more)

    async def get(self, principal: Principal, file_id: str) -> tables.File:
        async with self.db.read() as session:
            row = await FileRepository(session, principal.project_id).get(file_id)
        if row is None:
            raise NotFound.for_object("file", file_id)
        return row

    async def retrieve(self, principal: Principal, file_id: str) -> dict[str, Any]:
        return wire.file(await self.get(principal, file_id))

    async def content(self, principal: Principal, file_id: str) -> tuple[tables.File, AsyncIterator[bytes]]:
        """The file and its bytes in blocks; the first block is read here, so a missing blob fails before any
        answer starts."""
        row = await self.get(principal, file_id)
        blocks = aiter(self.blobs.stream(principal.project_id, row.id))
        first = await anext(blocks, b"")

        async def chained() -> AsyncIterator[bytes]:
            yield first
            async for block in blocks:
                yield block

        return row, chained()

    async def delete(self, principal: Principal, file_id: str) -> dict[str, Any]:
        """Delete the file, its chunks in every vector store and its place in them, then its bytes."""
        async with self.db.write() as session:
            if not await FileRepository(session, principal.project_id).delete(file_id):
                raise NotFound.for_object("file", file_id)
        await self.blobs.delete(principal.project_id, file_id)
        return wire.file_deleted(file_id)


def _require_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise InvalidRequest(
            f"Invalid 'purpose': expected one of {', '.join(PURPOSES)}.", param="purpose", code="invalid_value"
        )


def _clean_filename(filename: str) -> str:
    """The upload's name without any directories; refused when empty, too long or not storable."""
    filename = Path(filename.replace("\\", "/")).name.strip()
    if not filename or len(filename) > MAX_FILENAME:
        raise InvalidRequest(f"The file needs a name of 1 to {MAX_FILENAME} characters.", param="file")
    try:
        require_storable(filename)
    except ValueError as exc:
        raise InvalidRequest(f"The file name cannot be stored: {exc}", param="file") from exc
    return filename
