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

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from sqlalchemy import and_, bindparam, func, or_, select, update

from assistd import clock, metrics
from assistd.lifecycle import CLAIMABLE_RUN, LEASED_RUN, FileStatus, RunStatus
from assistd.store import tables
from assistd.store.database import Database, execute_dml

Job = TypeVar("Job", tables.Run, tables.VectorStoreFile)


class Claimed(NamedTuple, Generic[Job]):
    """What a claim took (None: nothing), and whether other jobs were waiting beside it: when none were, a
    worker need not look again until something is queued."""

    job: Job | None
    others_waiting: bool


def _lease_free(table: type[Job]):
    return or_(table.lease_expires_at.is_(None), table.lease_expires_at < bindparam("now"))


def _leased(table: type[Job]):
    return and_(table.lease_owner.is_not(None), table.lease_expires_at >= bindparam("now"))


@dataclass(frozen=True)
class _ClaimStatements:
    """A queue's claim, built once; `now`, `worker_id`, `project_id` and the job's values are bound parameters."""

    projects: Any  # the projects with a free job: their oldest job, how many
    held: Any  # how many jobs each project has under a live lease
    first_free: Any  # a project's oldest free job, locked (PostgreSQL: skipping jobs other claims locked)
    take: Callable[[tuple[str, ...]], Any]  # the guarded UPDATE that leases the job, also setting these columns


class _FairQueue(Generic[Job]):
    """What both queues share: the fair claim, and which project this worker served least recently."""

    table: ClassVar[Any]
    key: ClassVar[tuple[str, ...]]  # the columns that name a job
    order: ClassVar[tuple[str, ...]]  # oldest first
    _statements: ClassVar[_ClaimStatements]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._statements = _claim_statements(cls)

    @classmethod
    def waiting(cls) -> Any:
        """The jobs to take once their lease is free (may use the bound `worker_id`)."""
        raise NotImplementedError

    @classmethod
    def active(cls) -> Any:
        """The jobs that count as their project's while their lease is live."""
        raise NotImplementedError

    def __init__(self, db: Database) -> None:
        self.db = db
        self._last_served: dict[str, int] = {}
        self._clock = itertools.count()

    async def claim(self, worker_id: str, now: float, lease_seconds: float) -> Job | None:
        """Take a job of the project whose turn it is (see `claim_next`); None when there is none."""
        return (await self.claim_next(worker_id, now, lease_seconds)).job

    async def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Claimed[Job]:
        """Take a job of the project whose turn it is, saying too whether other jobs were waiting."""
        raise NotImplementedError

    def _named(self, job: Job) -> tuple[Any, ...]:
        """The conditions that pick `job`'s row (its `key` columns)."""
        return tuple(getattr(self.table, column) == getattr(job, column) for column in self.key)

    async def _claim(
        self, worker_id: str, now: float, lease_seconds: float, also: Callable[[Job], dict[str, Any]]
    ) -> Claimed[Job]:
        """Take a waiting job whose lease is free, of the project whose turn it is (see the module docstring).

        Looking is a read, so an idle worker writes nothing: the projects with a free job (their oldest one, how
        many), and, when there are several, how many jobs each has under a live lease. Taking happens in a write
        transaction that reads the chosen project's oldest free job again under `FOR UPDATE SKIP LOCKED`
        (PostgreSQL: workers claiming at once lock different jobs instead of queueing on one; SQLite: writes are
        serial anyway), or the next project's when none is left, then leases it with a guarded UPDATE that
        returns it (and sets the columns `also` gives for the job, as it was)."""
        statements = self._statements
        bound = {"now": now, "worker_id": worker_id}
        async with self.db.read() as session:
            found = (await session.execute(statements.projects, bound)).all()
            if not found:
                return Claimed(None, False)
            oldest: dict[str, Any] = {project: first for project, first, _count in found}
            others_waiting = sum(count for _project, _first, count in found) > 1
            leased: dict[str, int] = {}
            if len(oldest) > 1:  # only to rank projects: a single one needs no count
                leased = dict((await session.execute(statements.held, bound)).all())
        last_served = self._last_served.get
        ranked = sorted(oldest, key=lambda project: (leased.get(project, 0), last_served(project, -1), oldest[project]))
        async with self.db.write() as session:
            for project_id in ranked:
                job = await session.scalar(statements.first_free, {**bound, "project_id": project_id})
                if job is not None:
                    break
            else:
                return Claimed(None, others_waiting)
            extra = also(job)
            values = {f"job_{column}": getattr(job, column) for column in self.key}
            values.update({f"set_{column}": value for column, value in extra.items()})
            values.update(job_status=job.status, owner=worker_id, until=now + lease_seconds, attempts=job.attempts + 1)
            taken = await session.scalar(statements.take(tuple(extra)), {**bound, **values})
            if taken is not None:
                self._last_served[project_id] = next(self._clock)
            return Claimed(taken, others_waiting)


def _claim_statements(queue: type[_FairQueue[Any]]) -> _ClaimStatements:
    """The statements of `queue`'s claim, built when the queue's class is."""
    table = queue.table
    free = (queue.waiting(), _lease_free(table))
    first_column = getattr(table, queue.order[0])
    projects = select(table.project_id, func.min(first_column), func.count()).where(*free).group_by(table.project_id)
    held = select(table.project_id, func.count()).where(queue.active(), _leased(table)).group_by(table.project_id)
    first_free = (
        select(table)
        .where(*free, table.project_id == bindparam("project_id"))
        .order_by(*(getattr(table, column) for column in queue.order))
        .limit(1)
        .with_for_update(skip_locked=True)
    )

    @functools.cache
    def take(also: tuple[str, ...]) -> Any:
        named = [getattr(table, column) == bindparam(f"job_{column}") for column in queue.key]
        return (
            update(table)
            .where(*named, table.status == bindparam("job_status"), _lease_free(table))
            .values(
                lease_owner=bindparam("owner"),
                lease_expires_at=bindparam("until"),
                attempts=bindparam("attempts"),
                **{column: bindparam(f"set_{column}") for column in also},
            )
            .returning(table)
            .execution_options(populate_existing=True)
        )

    return _ClaimStatements(projects, held, first_free, take)


class RunQueue(_FairQueue[tables.Run]):
    table = tables.Run
    key = ("id",)
    order = ("id",)

    @classmethod
    def waiting(cls) -> Any:
        """Runs waiting, handed back by a worker that stopped, or whose lease another worker let run out."""
        run = tables.Run
        not_mine = or_(run.lease_owner.is_(None), run.lease_owner != bindparam("worker_id"))  # NULL != x is NULL
        return or_(run.status.in_(CLAIMABLE_RUN), and_(run.status == RunStatus.IN_PROGRESS, not_mine))

    @classmethod
    def active(cls) -> Any:
        return tables.Run.status.in_(LEASED_RUN)

    async def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Claimed[tables.Run]:
        """Take a run that is waiting, handed back by a worker that stopped, or whose lease another worker let run
        out, of the project whose turn it is; saying too whether other runs were waiting."""
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

        claimed = await self._claim(worker_id, now, lease_seconds, started)
        if claimed.job is not None and first_start:
            metrics.QUEUE_WAIT.observe(max(now - claimed.job.created_at, 0.0))
        return claimed

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


class IngestQueue(_FairQueue[tables.VectorStoreFile]):
    """Vector store files waiting to be ingested (`in_progress` with no live lease)."""

    table = tables.VectorStoreFile
    key = ("vector_store_id", "id")
    order = ("created_at", "id")

    @classmethod
    def waiting(cls) -> Any:
        return tables.VectorStoreFile.status == FileStatus.IN_PROGRESS

    active = waiting

    async def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Claimed[tables.VectorStoreFile]:
        """Take the file that has waited longest of the project whose turn it is; saying too whether other files
        were waiting."""
        return await self._claim(worker_id, now, lease_seconds, lambda _job: {})

    async def renew(self, job: tables.VectorStoreFile, worker_id: str, until: float) -> bool:
        async with self.db.write() as session:
            result = await execute_dml(
                session,
                update(tables.VectorStoreFile)
                .where(*self._named(job), tables.VectorStoreFile.lease_owner == worker_id)
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
