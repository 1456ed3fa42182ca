"""The bytes of uploaded files, on local disk: `<root>/<project id>/<file id>`.

A write goes to a temporary name, is flushed to disk and then renamed, so a file that exists is whole, and
an acknowledged upload survives a crash. The row in `files` is the index; this is only storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path
from typing import BinaryIO

COPY_BUFFER = 1024 * 1024


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project_id: str, file_id: str) -> Path:
        return self.root / project_id / file_id

    async def save(self, project_id: str, file_id: str, source: BinaryIO) -> tuple[int, str]:
        """Copy `source` (from its start) to the blob of `file_id`; returns its size and SHA-256 hex digest."""
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

    def read(self, project_id: str, file_id: str) -> bytes:
        """The whole blob (blocking; call it from a thread)."""
        return self.path(project_id, file_id).read_bytes()

    async def delete(self, project_id: str, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path(project_id, file_id).unlink)
