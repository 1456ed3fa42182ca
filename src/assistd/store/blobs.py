"""The bytes of uploaded files, behind one interface with two stores: a local directory (the single-machine
default) and the database (the default on PostgreSQL, so that API and worker processes on different machines
share them). The row in `files` is the index; a blob store is only storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

from assistd.config import Settings
from assistd.store.database import Database
from assistd.store.database_blobs import DatabaseBlobStore

COPY_BUFFER = 1024 * 1024


class BlobStore(Protocol):
    async def save(self, project_id: str, file_id: str, source: BinaryIO) -> tuple[int, str]:
        """Copy `source` (from its start) to the blob of `file_id`, whole or not at all; returns its size and
        SHA-256 hex digest."""
        ...

    async def read(self, project_id: str, file_id: str) -> bytes:
        """The whole blob; FileNotFoundError when there is none."""
        ...

    def stream(self, project_id: str, file_id: str) -> AsyncIterator[bytes]:
        """The blob in blocks of at most COPY_BUFFER bytes; FileNotFoundError (at the first) when there is none."""
        ...

    async def delete(self, project_id: str, file_id: str) -> None:
        """Remove the blob, if there is one."""
        ...


class LocalBlobStore:
    """`<root>/<project id>/<file id>`. A write goes to a temporary name, is flushed to disk and then renamed, so
    a file that exists is whole, and an acknowledged upload survives a crash."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project_id: str, file_id: str) -> Path:
        return self.root / project_id / file_id

    async def save(self, project_id: str, file_id: str, source: BinaryIO) -> tuple[int, str]:
        return await asyncio.to_thread(self._save, self.path(project_id, file_id), source)

    @staticmethod
    def _save(target: Path, source: BinaryIO) -> tuple[int, str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        size = 0
        source.seek(0)
        try:
            with partial.open("wb") as out:
                while block := source.read(COPY_BUFFER):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    async def read(self, project_id: str, file_id: str) -> bytes:
        return await asyncio.to_thread(self.path(project_id, file_id).read_bytes)

    async def stream(self, project_id: str, file_id: str) -> AsyncIterator[bytes]:
        with await asyncio.to_thread(self.path(project_id, file_id).open, "rb") as source:
            while block := await asyncio.to_thread(source.read, COPY_BUFFER):
                yield block

    async def delete(self, project_id: str, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path(project_id, file_id).unlink)


def open_blob_store(settings: Settings, db: Database) -> BlobStore:
    """The blob store the settings choose (`blob_store`; `auto`: the database on PostgreSQL, else local)."""
    kind = settings.blob_store
    if kind == "database" or (kind == "auto" and not db.is_sqlite):
        return DatabaseBlobStore(db, earlier=LocalBlobStore(settings.resolved_files_dir))
    return LocalBlobStore(settings.resolved_files_dir)
