"""Project-scoped repositories: the only place that queries tables, and every query carries project_id.

Code above the store never filters by project itself; it builds a repository for the caller's project and
asks it for objects. An object of another project simply is not there.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Iterable
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Select, Table, bindparam, delete, func, insert, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd import lifecycle
from assistd.lifecycle import ACTIVE_RUN, STEP_ENDING, FileStatus, RunStatus, StepStatus
from assistd.store import tables
from assistd.store.chunk_windows import write_windows
from assistd.store.database import execute_dml
from assistd.store.pagination import Page, PageRequest, Shape, fetch_page, paged

Row = TypeVar(
    "Row",
    tables.Assistant,
    tables.Thread,
    tables.Message,
    tables.Run,
    tables.RunStep,
    tables.File,
    tables.VectorStore,
    tables.VectorStoreFile,
    tables.VectorStoreFileBatch,
)


NUL = "\x00"


@functools.cache
def _columns(table: Any) -> tuple[tuple[str, Any], ...]:
    """(attribute name, column) of each of the table's columns: `metadata_` is the column `metadata`."""
    return tuple((attribute.key, attribute.columns[0]) for attribute in inspect(table).column_attrs)


@functools.cache
def read_only_columns(table: Any) -> tuple[Any, ...]:
    """The table's columns, each labelled with its attribute's name."""
    return tuple(column.label(key) for key, column in _columns(table))


def _equal(table: Any, columns: Iterable[str]) -> list[Any]:
    """Each of `table`'s `columns` equal to a bound parameter named after it."""
    return [getattr(table, column) == bindparam(column) for column in columns]


# Statements built once (their values are bound parameters; the project's is `project_id`): building a statement
# costs more than running it.


@functools.cache
def _page_statement(table: Any, filters: tuple[str, ...], shape: Shape) -> Select[Any]:
    """A page of `table`'s rows of a project, filtered by equality on the `filters` columns, for requests of `shape`."""
    return paged(select(*read_only_columns(table)).where(*_equal(table, ("project_id", *filters))), table.id, shape)


@functools.cache
def _rows_statement(table: Any, filters: tuple[str, ...]) -> Select[Any]:
    """Every row of a project whose `filters` columns hold the given values, oldest first, to read."""
    return select(*read_only_columns(table)).where(*_equal(table, ("project_id", *filters))).order_by(table.id)


@functools.cache
def _get_statement(table: Any, filters: tuple[str, ...]) -> Select[Any]:
    """The row of a project with the id `object_id`, when its `filters` columns hold the given values."""
    where = _equal(table, ("project_id", *filters))
    return select(table).where(table.id == bindparam("object_id"), *where)


@functools.cache
def _exists_statement(table: Any) -> Select[Any]:
    return select(table.id).where(table.project_id == bindparam("project_id"), table.id == bindparam("object_id"))


@functools.cache
def _insert_statement(table: Any) -> Any:
    return insert(cast(Table, table.__table__))


class ScopedRepository(Generic[Row]):
    """Create, read, page and delete rows of one table within one project."""

    table: type[Row]

    def __init__(self, session: AsyncSession, project_id: str) -> None:
        self.session = session
        self.project_id = project_id

    def _select(self, *conditions: Any):
        return select(self.table).where(self.table.project_id == self.project_id, *conditions)

    async def add(self, row: Row) -> Row:
        row.project_id = self.project_id
        self.session.add(row)
        await self.session.flush()
        return row

    async def insert(self, row: Row) -> Row:
        """Write a new row with one INSERT, without making it an object of the session: for a row that the
        transaction does not change again (cheaper than `add`'s flush)."""
        row.project_id = self.project_id
        values = {column.key: getattr(row, key) for key, column in _columns(self.table)}
        await self.session.execute(_insert_statement(self.table), values)
        return row

    async def get(self, object_id: str, **equal: Any) -> Row | None:
        """The row with this id, if the project has it and its columns named in `equal` hold the given values."""
        if NUL in object_id:  # no id has one, and PostgreSQL cannot even compare such text
            return None
        statement = _get_statement(self.table, tuple(equal))
        return await self.session.scalar(statement, {"project_id": self.project_id, "object_id": object_id, **equal})

    async def page(self, request: PageRequest, **equal: Any) -> Page[Row]:
        """A page of the rows whose columns named in `equal` hold the given values (`thread_id=...`), to read, not
        change: each has the row's values under the object's attribute names, without the cost of loading them as
        objects of the session. Its statement is built once for each kind of page."""
        statement = _page_statement(self.table, tuple(equal), request.shape)
        return await fetch_page(self.session, statement, request, {"project_id": self.project_id, **equal})

    async def rows(self, **equal: Any) -> list[Row]:
        """Every row whose columns named in `equal` hold the given values, oldest first, to read as `page` gives
        them. For tables whose rows a filter keeps few enough to hold at once (a thread's messages)."""
        result = await self.session.execute(
            _rows_statement(self.table, tuple(equal)), {"project_id": self.project_id, **equal}
        )
        return list(result.all())  # rows with the object's attribute names

    async def exists(self, object_id: str) -> bool:
        if NUL in object_id:
            return False
        parameters = {"project_id": self.project_id, "object_id": object_id}
        return await self.session.scalar(_exists_statement(self.table), parameters) is not None

    async def set(self, object_id: str, **values: Any) -> None:
        """Set columns of a row by id, read or not (a row that is gone stays gone)."""
        await self.session.execute(
            update(self.table)
            .where(self.table.project_id == self.project_id, self.table.id == object_id)
            .values(**values)
        )

    async def delete(self, object_id: str, *conditions: Any) -> bool:
        if NUL in object_id:
            return False
        result = await execute_dml(
            self.session,
            delete(self.table).where(self.table.project_id == self.project_id, self.table.id == object_id, *conditions),
        )
        return result.rowcount > 0


class AssistantRepository(ScopedRepository[tables.Assistant]):
    table = tables.Assistant


_ACTIVE_RUN_OF_THREAD = select(
    select(tables.Run.id)
    .where(
        tables.Run.project_id == tables.Thread.project_id,
        tables.Run.thread_id == tables.Thread.id,
        tables.Run.status.in_(ACTIVE_RUN),
    )
    .limit(1)
    .scalar_subquery()
).where(tables.Thread.project_id == bindparam("project_id"), tables.Thread.id == bindparam("object_id"))
"""A row if the project has the thread: the id of its active run, or None."""


class ThreadRepository(ScopedRepository[tables.Thread]):
    table = tables.Thread

    async def active_run(self, thread_id: str) -> tuple[bool, str | None]:
        """Whether the project has the thread, and the id of its active run (queued, in progress, requiring
        action or cancelling) if it has one: one statement."""
        if NUL in thread_id:
            return False, None
        parameters = {"project_id": self.project_id, "object_id": thread_id}
        row = (await self.session.execute(_ACTIVE_RUN_OF_THREAD, parameters)).first()
        return (True, row[0]) if row is not None else (False, None)

    async def delete(self, object_id: str, *conditions: Any) -> bool:
        """Delete a thread and its messages in the caller's transaction."""
        await self.session.execute(
            delete(tables.Message).where(
                tables.Message.project_id == self.project_id, tables.Message.thread_id == object_id
            )
        )
        return await super().delete(object_id, *conditions)


class MessageRepository(ScopedRepository[tables.Message]):
    table = tables.Message

    async def add_many(self, rows: list[tables.Message]) -> list[tables.Message]:
        for row in rows:
            row.project_id = self.project_id
        self.session.add_all(rows)
        await self.session.flush()
        return rows


class ProjectRepository:
    """Projects and their API keys: administration, not tenant data."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(tables.Project)) or 0

    async def add(self, project: tables.Project) -> tables.Project:
        self.session.add(project)
        await self.session.flush()
        return project

    async def list(self) -> list[tables.Project]:
        return list((await self.session.scalars(select(tables.Project).order_by(tables.Project.id))).all())

    async def find(self, id_or_name: str) -> tables.Project | None:
        return await self.session.scalar(
            select(tables.Project).where((tables.Project.id == id_or_name) | (tables.Project.name == id_or_name))
        )

    async def add_key(self, key: tables.ApiKey) -> tables.ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def keys(self, project_id: str | None = None) -> builtins.list[tables.ApiKey]:
        stmt = select(tables.ApiKey).order_by(tables.ApiKey.id)
        if project_id is not None:
            stmt = stmt.where(tables.ApiKey.project_id == project_id)
        return list((await self.session.scalars(stmt)).all())

    async def key_by_hash(self, secret_hash: str) -> tables.ApiKey | None:
        return await self.session.scalar(select(tables.ApiKey).where(tables.ApiKey.secret_hash == secret_hash))

    async def key(self, key_id: str) -> tables.ApiKey | None:
        return await self.session.get(tables.ApiKey, key_id)


class RunRepository(ScopedRepository[tables.Run]):
    table = tables.Run

    async def transition(self, run_id: str, sources: Iterable[str], **values: Any) -> tables.Run | None:
        """Move a run to `values["status"]` (and set the other columns) only if its status is one of `sources`:
        the run as it is now (its loaded copy refreshed), or None when it was not; then nothing changed."""
        moved = (
            update(tables.Run)
            .where(
                tables.Run.project_id == self.project_id,
                tables.Run.id == run_id,
                tables.Run.status.in_(list(sources)),
            )
            .values(**values)
            .returning(tables.Run)
            .execution_options(populate_existing=True)
        )
        return await self.session.scalar(moved)

    async def end(
        self, run_id: str, status: RunStatus, moment: int, *, sources: Iterable[str] | None = None, **values: Any
    ) -> tables.Run | None:
        """End a run in `status` (cancelled, expired, failed) from one of `sources` (default: every status that
        may lead there), with its unfinished steps (lifecycle.STEP_ENDING) at `moment`: the ended run, or None
        if it was not in a source status; then nothing changed."""
        ended = lifecycle.sources_of(status) if sources is None else sources
        run = await self.transition(run_id, ended, status=status, **values)
        if run is None:
            return None
        step_status, ended_at = STEP_ENDING[status]
        await self.session.execute(
            update(tables.RunStep)
            .where(
                tables.RunStep.project_id == self.project_id,
                tables.RunStep.run_id == run_id,
                tables.RunStep.status == StepStatus.IN_PROGRESS,
            )
            .values(status=step_status, **{ended_at: moment})
        )
        return run


class RunStepRepository(ScopedRepository[tables.RunStep]):
    table = tables.RunStep

    async def for_run(self, run_id: str) -> list[tables.RunStep]:
        rows = await self.session.scalars(self._select(tables.RunStep.run_id == run_id).order_by(tables.RunStep.id))
        return list(rows.all())


class IdempotencyRepository:
    """Remembered `Idempotency-Key`s of one project."""

    def __init__(self, session: AsyncSession, project_id: str) -> None:
        self.session = session
        self.project_id = project_id

    async def find(self, key: str) -> tables.IdempotencyKey | None:
        return await self.session.get(tables.IdempotencyKey, (self.project_id, key))

    async def remember(self, key: str, object_id: str, created_at: int, request_hash: str | None) -> None:
        self.session.add(
            tables.IdempotencyKey(
                project_id=self.project_id,
                key=key,
                object_id=object_id,
                created_at=created_at,
                request_hash=request_hash,
            )
        )
        await self.session.flush()


class FileRepository(ScopedRepository[tables.File]):
    table = tables.File

    async def get_many(self, file_ids: Iterable[str]) -> dict[str, tables.File]:
        rows = await self.session.scalars(self._select(tables.File.id.in_(list(set(file_ids)))))
        return {row.id: row for row in rows.all()}

    async def delete(self, object_id: str, *conditions: Any) -> bool:
        """Delete a file, and with it its chunks, its place in every vector store (which reindex) and its bytes
        in the database."""
        store_ids = list(
            (
                await self.session.scalars(
                    select(tables.VectorStoreFile.vector_store_id).where(
                        tables.VectorStoreFile.project_id == self.project_id, tables.VectorStoreFile.id == object_id
                    )
                )
            ).all()
        )
        chunks = ChunkRepository(self.session, self.project_id)
        for store_id in store_ids:
            await chunks.remove_file(store_id, object_id)
        await self.session.execute(
            delete(tables.VectorStoreFile).where(
                tables.VectorStoreFile.project_id == self.project_id, tables.VectorStoreFile.id == object_id
            )
        )
        if not await super().delete(object_id, *conditions):
            return False
        await self.session.execute(  # its bytes, when the blob store is the database
            delete(tables.FileBlob).where(
                tables.FileBlob.project_id == self.project_id, tables.FileBlob.file_id == object_id
            )
        )
        return True


class VectorStoreRepository(ScopedRepository[tables.VectorStore]):
    table = tables.VectorStore

    async def get_many(self, store_ids: Iterable[str]) -> list[tables.VectorStore]:
        rows = await self.session.scalars(self._select(tables.VectorStore.id.in_(list(store_ids))))
        return list(rows.all())

    async def named(self, name: str) -> tables.VectorStore | None:
        """The newest store with this name."""
        return await self.session.scalar(
            self._select(tables.VectorStore.name == name).order_by(tables.VectorStore.id.desc()).limit(1)
        )

    async def touch(self, store_ids: Iterable[str], moment: int) -> None:
        """Mark stores as used now (their expiry counts from their last activity)."""
        await self.session.execute(
            update(tables.VectorStore)
            .where(tables.VectorStore.project_id == self.project_id, tables.VectorStore.id.in_(list(store_ids)))
            .values(last_active_at=moment)
        )


def _status_counts(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(FileStatus, 0)
    for status, count in rows:
        counts[status] = count
    counts["total"] = sum(counts.values())
    return counts


class VectorStoreFileRepository(ScopedRepository[tables.VectorStoreFile]):
    """Files of vector stores; every method names the store, since a file may sit in several."""

    table = tables.VectorStoreFile

    async def get_in(self, store_id: str, file_id: str) -> tables.VectorStoreFile | None:
        return await self.get(file_id, vector_store_id=store_id)

    async def in_store(self, store_id: str, *conditions: Any) -> list[tables.VectorStoreFile]:
        rows = await self.session.scalars(self._select(tables.VectorStoreFile.vector_store_id == store_id, *conditions))
        return list(rows.all())

    async def counts(self, store_id: str, batch_id: str | None = None) -> dict[str, int]:
        """file_counts of a store (or of one of its batches)."""
        stmt = (
            select(tables.VectorStoreFile.status, func.count())
            .where(tables.VectorStoreFile.project_id == self.project_id)
            .where(tables.VectorStoreFile.vector_store_id == store_id)
            .group_by(tables.VectorStoreFile.status)
        )
        if batch_id is not None:
            stmt = stmt.where(tables.VectorStoreFile.batch_id == batch_id)
        return _status_counts((await self.session.execute(stmt)).tuples().all())

    async def usage_bytes(self, store_id: str) -> int:
        total = await self.session.scalar(
            select(func.coalesce(func.sum(tables.VectorStoreFile.usage_bytes), 0)).where(
                tables.VectorStoreFile.project_id == self.project_id,
                tables.VectorStoreFile.vector_store_id == store_id,
            )
        )
        return int(total or 0)

    async def remove(self, store_id: str, file_id: str) -> bool:
        """Take a file out of a store, with its chunks."""
        await ChunkRepository(self.session, self.project_id).remove_file(store_id, file_id)
        return await self.delete(file_id, tables.VectorStoreFile.vector_store_id == store_id)

    async def cancel_batch(self, store_id: str, batch_id: str) -> None:
        await self.session.execute(
            update(tables.VectorStoreFile)
            .where(
                tables.VectorStoreFile.project_id == self.project_id,
                tables.VectorStoreFile.vector_store_id == store_id,
                tables.VectorStoreFile.batch_id == batch_id,
                tables.VectorStoreFile.status == FileStatus.IN_PROGRESS,
            )
            .values(status=FileStatus.CANCELLED, lease_owner=None, lease_expires_at=None)
        )


class FileBatchRepository(ScopedRepository[tables.VectorStoreFileBatch]):
    table = tables.VectorStoreFileBatch


class ChunkRepository:
    """The chunks of a project's vector store files. Adding or removing any bumps the store's index_version."""

    def __init__(self, session: AsyncSession, project_id: str) -> None:
        self.session = session
        self.project_id = project_id

    async def replace_file(self, store_id: str, file_id: str, rows: list[tables.Chunk], dimensions: int) -> None:
        """Make `rows` (embeddings of `dimensions` per window) the file's chunks in the store."""
        await self.remove_file(store_id, file_id)
        for row in rows:
            row.project_id, row.vector_store_id, row.file_id = self.project_id, store_id, file_id
        self.session.add_all(rows)
        await self.session.flush()
        await write_windows(self.session, rows, dimensions)
        await self._bump(store_id)

    async def remove_file(self, store_id: str, file_id: str) -> None:
        result = await execute_dml(
            self.session,
            delete(tables.Chunk).where(
                tables.Chunk.project_id == self.project_id,
                tables.Chunk.vector_store_id == store_id,
                tables.Chunk.file_id == file_id,
            ),
        )
        if result.rowcount:
            await self._bump(store_id)

    async def by_ids(self, chunk_ids: Iterable[int]) -> dict[int, tables.Chunk]:
        rows = await self.session.scalars(
            select(tables.Chunk).where(tables.Chunk.project_id == self.project_id, tables.Chunk.id.in_(list(chunk_ids)))
        )
        return {row.id: row for row in rows.all()}

    async def _bump(self, store_id: str) -> None:
        await self.session.execute(
            update(tables.VectorStore)
            .where(tables.VectorStore.project_id == self.project_id, tables.VectorStore.id == store_id)
            .values(index_version=tables.VectorStore.index_version + 1)
        )
