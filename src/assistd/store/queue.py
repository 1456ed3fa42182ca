"""The job queues: runs, and vector store files to ingest, taken by workers under a lease (owner + expiry,
renewed by heartbeat).

This is the one place that reads jobs across projects: a worker serves every project. A claim is a guarded
UPDATE, so among any number of workers (threads or processes) exactly one gets a given job; on PostgreSQL
concurrent claims skip each other's locked rows. A job whose
worker died keeps its status but its lease runs out, and the next claim takes it over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import and_, func, inspect, or_, select, update

from assistd.store import tables
from assistd.store.database import Database

CLAIMABLE = ("queued", "cancelling")

Job = TypeVar("Job", tables.Run, tables.VectorStoreFile)


def _lease_free(table: type[Job], now: float):
    return or_(table.lease_expires_at.is_(None), table.lease_expires_at < now)


async def _claim(
    db: Database,
    table: type[Job],
    waiting: Any,
    order: Any,
    key: Callable[[Job], tuple[Any, ...]],
    worker_id: str,
    now: float,
    lease_seconds: float,
) -> Job | None:
    """Take the first `waiting` job (in `order`) whose lease is free; None when there is none.

    Looking is a read, so an idle worker writes nothing. Taking happens in a write transaction that reads the
    first free job again under `FOR UPDATE SKIP LOCKED` (PostgreSQL: workers claiming at once lock different
    jobs instead of queueing on one; SQLite: writes are serial anyway), then leases it with a guarded UPDATE."""
    free = (waiting, _lease_free(table, now))
    async with db.read() as session:
        if await session.scalar(select(table.id).where(*free).limit(1)) is None:
            return None
    async with db.write() as session:
        first_free = select(table).where(*free).order_by(order).limit(1)
        job = await session.scalar(first_free.with_for_update(skip_locked=True))
        if job is None:
            return None
        taken = await session.execute(
            update(table)
            .where(*key(job), table.status == job.status, _lease_free(table, now))
            .values(lease_owner=worker_id, lease_expires_at=now + lease_seconds, attempts=job.attempts + 1)
        )
        if taken.rowcount != 1:
            return None
        return await session.get(table, inspect(job).identity, populate_existing=True)


class RunQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, worker_id: str, now: float, lease_seconds: float) -> tables.Run | None:
        """Take the oldest run that is waiting, handed back by a worker that stopped, or whose lease another worker
        let run out; None when there is none."""
        not_mine = or_(tables.Run.lease_owner.is_(None), tables.Run.lease_owner != worker_id)  # NULL != x is NULL
        waiting = or_(tables.Run.status.in_(CLAIMABLE), and_(tables.Run.status == "in_progress", not_mine))
        return await _claim(
            self.db,
            tables.Run,
            waiting,
            tables.Run.id,
            lambda run: (tables.Run.id == run.id,),
            worker_id,
            now,
            lease_seconds,
        )

    async def renew(self, run_id: str, worker_id: str, until: float) -> bool:
        """Extend a lease this worker holds; False when it has lost it."""
        async with self.db.write() as session:
            result = await session.execute(
                update(tables.Run)
                .where(tables.Run.id == run_id, tables.Run.lease_owner == worker_id)
                .values(lease_expires_at=until)
            )
            return result.rowcount == 1

    async def release(self, run_id: str, worker_id: str) -> None:
        async with self.db.write() as session:
            await session.execute(
                update(tables.Run)
                .where(tables.Run.id == run_id, tables.Run.lease_owner == worker_id)
                .values(lease_owner=None, lease_expires_at=None)
            )

    async def overdue_actions(self, now: int) -> list[tables.Run]:
        """Runs whose tool outputs were due before `now`."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(tables.Run).where(tables.Run.status == "requires_action", tables.Run.expires_at < now)
            )
            return list(rows.all())


async def expired_files(db: Database, now: int) -> list[tables.File]:
    """Files of any project whose `expires_at` has passed."""
    async with db.read() as session:
        rows = await session.scalars(
            select(tables.File).where(tables.File.expires_at.is_not(None), tables.File.expires_at <= now)
        )
        return list(rows.all())


class IngestQueue:
    """Vector store files waiting to be ingested (`in_progress` with no live lease)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _job(self, job: tables.VectorStoreFile):
        return (tables.VectorStoreFile.vector_store_id == job.vector_store_id, tables.VectorStoreFile.id == job.id)

    async def claim(self, worker_id: str, now: float, lease_seconds: float) -> tables.VectorStoreFile | None:
        """Take the file that has waited longest; None when there is none."""
        return await _claim(
            self.db,
            tables.VectorStoreFile,
            tables.VectorStoreFile.status == "in_progress",
            tables.VectorStoreFile.created_at,
            self._job,
            worker_id,
            now,
            lease_seconds,
        )

    async def renew(self, job: tables.VectorStoreFile, worker_id: str, until: float) -> bool:
        async with self.db.write() as session:
            result = await session.execute(
                update(tables.VectorStoreFile)
                .where(*self._job(job), tables.VectorStoreFile.lease_owner == worker_id)
                .values(lease_expires_at=until)
            )
            return result.rowcount == 1


async def waiting_jobs(db: Database) -> dict[str, int]:
    """How many jobs of each queue wait for a worker: runs queued, and files to ingest that no worker holds."""
    async with db.read() as session:
        runs = await session.scalar(select(func.count()).select_from(tables.Run).where(tables.Run.status == "queued"))
        files = await session.scalar(
            select(func.count())
            .select_from(tables.VectorStoreFile)
            .where(tables.VectorStoreFile.status == "in_progress", tables.VectorStoreFile.lease_owner.is_(None))
        )
    return {"runs": runs or 0, "ingestion": files or 0}
