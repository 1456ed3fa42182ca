"""The bytes of uploaded files in the database (table `file_blobs`), so that every process of a deployment
reads them wherever it runs, without a shared disk.

A blob is stored as numbered parts of PART_BYTES, written in one transaction: the rows appear together when the
whole file is stored, and a failed or interrupted upload leaves none. Only one part is in memory at a time, on
the way in and on the way out (a download reads each part in its own short query).

Files uploaded before a deployment moved to this store keep their bytes in the files directory: a blob that
has no parts here is read from (and deleted in) that directory, so an upgrade loses no file.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import delete, insert, select

from assistd.store import tables
from assistd.store.database import Database

if TYPE_CHECKING:
    from assistd.store.blobs import LocalBlobStore

PART_BYTES = 1024 * 1024


class DatabaseBlobStore:
    def __init__(self, db: Database, earlier: LocalBlobStore | None = None, part_bytes: int = PART_BYTES) -> None:
        self.db = db
        self.earlier = earlier  # where files uploaded before this store was chosen keep their bytes
        self.part_bytes = part_bytes

    async def save(self, project_id: str, file_id: str, source: BinaryIO) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        await asyncio.to_thread(source.seek, 0)
        async with self.db.write() as session:
            for part in itertools.count():
                block = await asyncio.to_thread(source.read, self.part_bytes)
                if not block and part > 0:  # an empty file is one empty part, so that it exists
                    break
                digest.update(block)
                size += len(block)
                await session.execute(
                    insert(tables.FileBlob).values(project_id=project_id, file_id=file_id, part=part, data=block)
                )
        return size, digest.hexdigest()

    async def read(self, project_id: str, file_id: str) -> bytes:
        return b"".join([block async for block in self.stream(project_id, file_id)])

    async def stream(self, project_id: str, file_id: str) -> AsyncIterator[bytes]:
        part = 0
        while True:
            async with self.db.read() as session:
                block = await session.scalar(
                    select(tables.FileBlob.data).where(
                        tables.FileBlob.project_id == project_id,
                        tables.FileBlob.file_id == file_id,
                        tables.FileBlob.part == part,
                    )
                )
            if block is None:
                if part == 0 and self.earlier is not None:
                    async for earlier_block in self.earlier.stream(project_id, file_id):
                        yield earlier_block
                    return
                if part == 0:
                    raise FileNotFoundError(f"no stored bytes for {file_id}")
                return
            yield block
            part += 1

    async def delete(self, project_id: str, file_id: str) -> None:
        async with self.db.write() as session:
            await session.execute(
                delete(tables.FileBlob).where(
                    tables.FileBlob.project_id == project_id, tables.FileBlob.file_id == file_id
                )
            )
        if self.earlier is not None:
            await self.earlier.delete(project_id, file_id)
