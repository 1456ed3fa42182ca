"""The job queues: runs, and vector store files to ingest, taken by workers under a lease (owner + expiry,
renewed by heartbeat).

This is the one place that reads jobs across projects: a worker serves every project. A claim is a guarded
UPDATE, so among any number of workers (threads or processes) exactly one gets a given job; on PostgreSQL
concurrent claims skip each other's locked rows. A job whose
worker died keeps its status but its lease runs out, and the next claim takes it over.

Claims are fair to projects, not first-in-first-out across them: among the projects with a job to take, the
one with the fewest jobs under a live lease goes first (counted in the store, so across all workers), then the
one this worker served least recently, then the project's oldest job. A project with a backlog of hundreds
makes another project's one job wait for at most one job's turn.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update

from assistd import clock, metrics
from assistd.lifecycle import CLAIMABLE_RUN, LEASED_RUN, FileStatus, RunStatus
from assistd.store import tables
from assistd.store.database import Database, execute_dml

Job = TypeVar("Job", tables.Run, tables.VectorStoreFile)


def _lease_free(table: type[Job], now: float):
    return or_(table.lease_expires_at.is_(None), table.lease_expires_at < now)


def _leased(table: type[Job], now: float):
    return and_(table.lease_owner.is_not(None), table.lease_expires_at >= now)


class _FairQueue:
    """What both queues share: the fair claim, and which project this worker served least recently."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._last_served: dict[str, int] = {}
        self._clock = itertools.count()

    async def _claim(
        self,
        table: type[Job],
        waiting: Any,
        active: Any,
        order: tuple[Any, ...],
        key: Callable[[Job], tuple[Any, ...]],
        worker_id: str,
        now: float,
        lease_seconds: float,
        also: Callable[[Job], dict[str, Any]] = lambda _job: {},
    ) -> Job | None:
        """Take a `waiting` job whose lease is free, of the project whose turn it is (see the module docstring);
        None when there is none. `active` jobs count as the project's own while their lease is live.

        Looking is a read, so an idle worker writes nothing: the projects with a free job (and their oldest one),
        and, when there are several, how many jobs each has under a live lease. Taking happens in a write
        transaction that reads the chosen project's oldest free job again under `FOR UPDATE SKIP LOCKED`
        (PostgreSQL: workers claiming at once lock different jobs instead of queueing on one; SQLite: writes are
        serial anyway), or the next project's when none is left, then leases it with a guarded UPDATE that
        returns it (and sets the columns `also` gives for the job, as it was)."""
        free = (waiting, _lease_free(table, now))
        async with self.db.read() as session:
            projects = select(table.project_id, func.min(order[0])).where(*free).group_by(table.project_id)
            oldest: dict[str, Any] = dict((await session.execute(projects)).all())
            if not oldest:
                return None
            leased: dict[str, int] = {}
            if len(oldest) > 1:  # only to rank projects: a single one needs no count
                held = select(table.project_id, func.count()).where(active, _leased(table, now))
                leased = dict((await session.execute(held.group_by(table.project_id))).all())
        last_served = self._last_served.get
        ranked = sorted(oldest, key=lambda project: (leased.get(project, 0), last_served(project, -1), oldest[project]))
        async with self.db.write() as session:
            for project_id in ranked:
                first_free = select(table).where(*free, table.project_id == project_id).order_by(*order).limit(1)
                job = await session.scalar(first_free.with_for_update(skip_locked=True))
                if job is not None:
                    break
            else:
                return None
            taken = await session.scalar(
                update(table)
                .where(*key(job), table.status == job.status, _lease_free(table, now))
                .values(
                    lease_owner=worker_id, lease_expires_at=now + lease_seconds, attempts=job.attempts + 1, **also(job)
                )
                .returning(table)
                .execution_options(populate_existing=True)
            )
            if taken is not None:
                self._last_served[project_id] = next(self._clock)
            return taken


class RunQueue(_FairQueue):
    async def claim(self, worker_id: str, now: float, lease_seconds: float) -> tables.Run | None:
        """Take a run that is waiting, handed back by a worker that stopped, or whose lease another worker let run
        out, of the project whose turn it is; None when there is none."""
        not_mine = or_(tables.Run.lease_owner.is_(None), tables.Run.lease_owner != worker_id)  # NULL != x is NULL
        waiting = or_(tables.Run.status.in_(CLAIMABLE_RUN), and_(tables.Run.status == RunStatus.IN_PROGRESS, not_mine))
        first_start = False

        def started(run: tables.Run) -> dict[str, Any]:
            """A queued run that no worker took yet is started by the claim that takes it: queued → in_progress
            in the same UPDATE, one transaction less before its first token. It comes out in_progress with
            attempts 1, which no other claim gives (a run in progress when claimed was claimed before)."""
            nonlocal first_start
            if run.status != RunStatus.QUEUED or run.attempts != 0:
                return {}
            first_start = run.started_at is None  # not a round after tool outputs
            return {"status": RunStatus.IN_PROGRESS, "started_at": run.started_at or clock.now()}

        taken = await self._claim(
            tables.Run,
            waiting,
            tables.Run.status.in_(LEASED_RUN),
            (tables.Run.id,),
            lambda run: (tables.Run.id == run.id,),
            worker_id,
            now,
            lease_seconds,
            started,
        )
        if taken is not None and first_start:
            metrics.QUEUE_WAIT.observe(max(now - taken.created_at, 0.0))
        return taken

    async def renew(self, run_id: str, worker_id: str, until: float) -> bool:
        """Extend a lease this worker holds; False when it has lost it."""
        async with self.db.write() as session:
            result = await execute_dml(
                session,
                update(tables.Run)
                .where(tables.Run.id == run_id, tables.Run.lease_owner == worker_id)
                .values(lease_expires_at=until),
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
                select(tables.Run).where(tables.Run.status == RunStatus.REQUIRES_ACTION, tables.Run.expires_at < now)
            )
            return list(rows.all())


async def expired_files(db: Database, now: int) -> list[tables.File]:
    """Files of any project whose `expires_at` has passed."""
    async with db.read() as session:
        rows = await session.scalars(
            select(tables.File).where(tables.File.expires_at.is_not(None), tables.File.expires_at <= now)
        )
        return list(rows.all())


class IngestQueue(_FairQueue):
    """Vector store files waiting to be ingested (`in_progress` with no live lease)."""

    def _job(self, job: tables.VectorStoreFile):
        return (tables.VectorStoreFile.vector_store_id == job.vector_store_id, tables.VectorStoreFile.id == job.id)

    async def claim(self, worker_id: str, now: float, lease_seconds: float) -> tables.VectorStoreFile | None:
        """Take the file that has waited longest of the project whose turn it is; None when there is none."""
        in_progress = tables.VectorStoreFile.status == FileStatus.IN_PROGRESS
        return await self._claim(
            tables.VectorStoreFile,
            in_progress,
            in_progress,
            (tables.VectorStoreFile.created_at, tables.VectorStoreFile.id),
            self._job,
            worker_id,
            now,
            lease_seconds,
        )

    async def renew(self, job: tables.VectorStoreFile, worker_id: str, until: float) -> bool:
        async with self.db.write() as session:
            result = await execute_dml(
                session,
                update(tables.VectorStoreFile)
                .where(*self._job(job), tables.VectorStoreFile.lease_owner == worker_id)
                .values(lease_expires_at=until),
            )
            return result.rowcount == 1


async def waiting_jobs(db: Database) -> dict[str, int]:
    """How many jobs of each queue wait for a worker: runs queued, and files to ingest that no worker holds."""
    async with db.read() as session:
        runs = await session.scalar(
            select(func.count()).select_from(tables.Run).where(tables.Run.status == RunStatus.QUEUED)
        )
        files = await session.scalar(
            select(func.count())
            .select_from(tables.VectorStoreFile)
            .where(
                tables.VectorStoreFile.status == FileStatus.IN_PROGRESS, tables.VectorStoreFile.lease_owner.is_(None)
            )
        )
    return {"runs": runs or 0, "ingestion": files or 0}
