"""The worker loop: claim runs from the queue, execute them (a few at a time), expire overdue tool outputs.

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

from assistd.runtime import states
from assistd.runtime.executor import RunExecutor
from assistd.services import wire
from assistd.services.clock import now
from assistd.store.queue import RunQueue
from assistd.store.repositories import RunRepository, RunStepRepository

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.2


class Worker:
    def __init__(self, executor: RunExecutor, *, concurrency: int, lease_seconds: float) -> None:
        self.executor = executor
        self.queue = RunQueue(executor.db)
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.worker_id = f"worker-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look at the queue now (a run was just queued)."""
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name=self.worker_id)

    async def stop(self) -> None:
        """Stop taking runs and cancel the ones under way; their leases run out and another worker resumes them."""
        tasks = [task for task in (self._loop_task, *self._running) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self._expire_overdue()
                while len(self._running) < self.concurrency:
                    run = await self.queue.claim(self.worker_id, time.time(), self.lease_seconds)
                    if run is None:
                        break
                    task = asyncio.create_task(self.executor.execute(run, self.worker_id), name=run.id)
                    self._running.add(task)
                    task.add_done_callback(self._finished)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker loop error; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _expire_overdue(self) -> None:
        """requires_action past expires_at → expired (and its pending tool-calls step too)."""
        moment = now()
        for run in await self.queue.overdue_actions(moment):
            async with self.executor.db.write() as session:
                runs = RunRepository(session, run.project_id)
                if not await runs.transition(
                    run.id, states.sources_of("expired") & {"requires_action"}, status="expired", required_action=None
                ):
                    continue
                for step in await RunStepRepository(session, run.project_id).for_run(run.id):
                    if step.status == "in_progress":
                        step.status, step.expired_at = "expired", moment
                expired = await runs.get(run.id)
            self.executor.bus.publish(run.id, "thread.run.expired", wire.run(expired))
