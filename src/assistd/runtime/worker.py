"""The worker loop: claim runs and files to ingest from the queues, work on them (a few at a time), expire
overdue tool outputs.

The loop looks at a queue when something was queued (`wake`), when it left jobs there for want of a free slot,
and every IDLE_POLL_SECONDS (jobs queued by processes that cannot wake it, leases run out). A run that ends
frees a slot but queues nothing: the loop does not look again for it. Overdue tool outputs are looked for once
a second (they are due in whole seconds).

A run created in the process of a worker that has a slot free, when nothing else waited at its last look, is
not queued for it to claim: it is created leased to the worker and in progress, and starts at once
(`start_directly`). That is the claim the worker would have made next, without its read and transaction.

In the embedded mode one worker runs inside `assistd serve`; the queue's leases let any number of workers
share a store. A run interrupted by a crash is taken over when its lease runs out (at the latest
`lease_seconds` after the restart) and started again; one interrupted too often ends `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from assistd import metrics
from assistd.clock import now
from assistd.errors import StoreUnavailable
from assistd.lifecycle import RunStatus
from assistd.runtime.executor import RunExecutor
from assistd.runtime.ingestion import Ingestor
from assistd.store import tables
from assistd.store.queue import Claimed, Job, RunQueue

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.2
EXPIRY_INTERVAL_SECONDS = 1.0
FILE_EXPIRY_INTERVAL_SECONDS = 30.0


class DirectStart:
    """A worker's slot, held for one run while the transaction that creates it runs."""

    def __init__(self, worker: Worker) -> None:
        self._worker: Worker | None = worker
        self._run: tables.Run | None = None

    def lease(self, run: tables.Run) -> None:
        """Make the new run (not yet inserted) in progress and leased to the worker, as its claim would."""
        assert self._worker is not None and self._run is None, "a direct start takes one run"
        run.status = RunStatus.IN_PROGRESS
        run.started_at = now()
        run.attempts = 1
        run.lease_owner = self._worker.worker_id
        run.lease_expires_at = time.time() + self._worker.lease_seconds
        self._run = run

    def begin(self) -> bool:
        """Execute the leased run, now committed, in the slot; False when no run was leased (the slot is
        released)."""
        worker, run = self._worker, self._run
        self.release()
        if worker is None or run is None:
            return False
        metrics.QUEUE_WAIT.observe(0.0)
        worker._start_run(run)
        return True

    def release(self) -> None:
        """Give the slot back unused (the create failed or created nothing); nothing once begun."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker._reserved -= 1


class Worker:
    def __init__(
        self,
        executor: RunExecutor,
        ingestor: Ingestor,
        *,
        concurrency: int,
        ingest_concurrency: int,
        lease_seconds: float,
    ) -> None:
        self.executor = executor
        self.ingestor = ingestor
        self.queue = RunQueue(executor.db)
        self.concurrency = concurrency
        self.ingest_concurrency = ingest_concurrency
        self.lease_seconds = lease_seconds
        self.worker_id = f"worker-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._reserved = 0  # slots held by direct starts
        self._idle = False  # waiting for a wake-up, between rounds
        self._ingesting: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._next_file_expiry = 0.0
        self._next_expiry = 0.0
        self._next_poll = 0.0
        self._look_for_runs = self._look_for_files = True  # something may be queued: claim until none is left

    def wake(self, *, runs: bool = True, files: bool = True) -> None:
        """Look at the queues now: the one of runs, of files to ingest, or both (something was just queued)."""
        self._look_for_runs |= runs
        self._look_for_files |= files
        self._wake.set()

    def start_directly(self) -> DirectStart | None:
        """A slot for a run about to be created, when this worker would claim it at once anyway: it is running,
        a slot is free, and it is between rounds with no run waiting at its last look. None otherwise: the run
        is queued."""
        if not self._idle or self._look_for_runs:
            return None
        if len(self._running) + self._reserved >= self.concurrency:
            return None
        self._reserved += 1
        return DirectStart(self)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name=self.worker_id)

    async def stop(self) -> None:
        """Stop taking runs and cancel the ones under way; their leases run out and another worker resumes them."""
        tasks = [task for task in (self._loop_task, *self._running, *self._ingesting) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # a wake from now on, even during this round, brings another round at once
            try:
                await self._housekeeping()
                if time.monotonic() >= self._next_poll:
                    self._next_poll = time.monotonic() + IDLE_POLL_SECONDS
                    self._look_for_runs = self._look_for_files = True
                if self._look_for_runs:
                    self._look_for_runs = False  # before claiming: a wake meanwhile sets it again
                    self._look_for_runs = await self._claim_runs() or self._look_for_runs
                if self._look_for_files:
                    self._look_for_files = False
                    self._look_for_files = await self._claim_files() or self._look_for_files
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._look_for_runs = self._look_for_files = True
                if isinstance(exc, StoreUnavailable):
                    log.warning("database unavailable (%s); the worker retries", type(exc).__name__)
                else:
                    log.exception("worker loop error; retrying")
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns when the wait ends as the task is
            # cancelled (a run cancelled by stop() wakes the worker), and the worker would never stop
            self._idle = True
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_POLL_SECONDS):
                        await self._wake.wait()
            finally:
                self._idle = False

    async def _housekeeping(self) -> None:
        """Expire overdue tool outputs (once a second) and expired files (every FILE_EXPIRY_INTERVAL_SECONDS)."""
        if time.monotonic() >= self._next_expiry:
            self._next_expiry = time.monotonic() + EXPIRY_INTERVAL_SECONDS
            await self._expire_overdue()
        if time.monotonic() >= self._next_file_expiry:
            self._next_file_expiry = time.monotonic() + FILE_EXPIRY_INTERVAL_SECONDS
            await self.ingestor.expire_files(now())

    async def _claim_runs(self) -> bool:
        """Start runs until none is waiting or no slot is free; whether runs may still be waiting."""

        def begin(run: tables.Run) -> tuple[Coroutine[Any, Any, None], str]:
            log.info("run %s claimed (attempt %d)", run.id, run.attempts)
            return self.executor.execute(run, self.worker_id), run.id

        return await self._fill(self._running, self.concurrency - self._reserved, self.queue.claim_next, begin)

    def _start_run(self, run: tables.Run) -> None:
        log.info("run %s started at its creation", run.id)
        self._start(self._running, self.executor.execute(run, self.worker_id, new=True), run.id)

    async def _claim_files(self) -> bool:
        """Start ingesting files until none is waiting or no slot is free; whether files may still be waiting."""

        def begin(job: tables.VectorStoreFile) -> tuple[Coroutine[Any, Any, None], str]:
            return self.ingestor.ingest(job, self.worker_id), f"ingest-{job.id}"

        return await self._fill(self._ingesting, self.ingest_concurrency, self.ingestor.queue.claim_next, begin)

    async def _fill(
        self,
        tasks: set[asyncio.Task[None]],
        slots: int,
        claim: Callable[[str, float, float], Awaitable[Claimed[Job]]],
        begin: Callable[[Job], tuple[Coroutine[Any, Any, None], str]],
    ) -> bool:
        """Claim jobs and start their work until none is left (False) or the `slots` are full (True). A job taken
        when no other waited is the last: the loop does not look again for nothing, and the job's work starts
        before the loop's next read."""
        while len(tasks) < slots:
            job, others_waiting = await claim(self.worker_id, time.time(), self.lease_seconds)
            if job is None:
                return False
            self._start(tasks, *begin(job))
            if not others_waiting:
                return False
        return True

    def _start(self, tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            tasks.discard(done)
            self._wake.set()

        task.add_done_callback(finished)

    async def _expire_overdue(self) -> None:
        """requires_action past expires_at → expired (and its pending tool-calls step too)."""
        moment = now()
        for run in await self.queue.overdue_actions(moment):
            await self.executor.recorder.expire(run, moment)
