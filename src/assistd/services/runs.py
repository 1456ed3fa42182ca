"""Runs and run steps: create (and create-and-run), list, retrieve, modify, cancel, submit tool outputs.

Creating a run only queues it: a worker executes it (runtime/), never the HTTP request. When this process's
worker would take the run at once anyway, the run is created leased to it and in progress instead of queued
(`RunStart`), and the caller still sees the run as queued, as OpenAI shows it. A caller that wants the events
subscribes to the bus before the run is committed, so it cannot miss the first of them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from assistd import metrics
from assistd.clock import now
from assistd.engines.registry import ModelRegistry
from assistd.errors import InvalidRequest, NotFound
from assistd.events.bus import Event, EventBus, Subscription
from assistd.ids import new_id
from assistd.lifecycle import RunStatus, sources_of
from assistd.protocol import wire
from assistd.schemas.runs import RunCreate, SubmitToolOutputs, ThreadAndRunCreate
from assistd.schemas.threads import ThreadCreate
from assistd.services.idempotency import Idempotency, replayed
from assistd.services.limits import LimitService
from assistd.services.messages import check_thread, new_message_row, thread_active_run
from assistd.services.principal import Principal
from assistd.services.run_creation import (
    insert_run,
    new_run,
    require_assistant,
    require_idle_thread,
    run_instructions,
)
from assistd.services.threads import add_thread
from assistd.services.tool_outputs import check_tool_outputs, complete_tool_calls
from assistd.services.tool_resources import index_attachments
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import MessageRepository, RunRepository, RunStepRepository


@dataclass
class Started:
    """What a create or submit returns: the run, and, for a streaming caller, the events in order."""

    run: dict[str, Any]
    prelude: list[Event]
    events: Subscription | None


class RunStart(Protocol):
    """A worker's slot for a run being created: `lease` the new row to the worker, then, once it is committed,
    `begin` (whether a run was leased and began), or `release` when the create failed."""

    def lease(self, run: tables.Run) -> None: ...

    def begin(self) -> bool: ...

    def release(self) -> None: ...


class RunService:
    """The run API of the caller's threads; runs are queued here and executed by a worker."""

    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        bus: EventBus,
        wake: Callable[..., None],
        limits: LimitService,
        start_directly: Callable[[], RunStart | None] = lambda: None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.bus = bus
        self.wake = wake
        self.limits = limits
        self.start_directly = start_directly

    # -- create -----------------------------------------------------------------------------------------

    def _run_place(
        self, principal: Principal, idempotency_key: Idempotency | None
    ) -> AbstractAsyncContextManager[None]:
        """A place among the active runs, held while the run is created: a create over the limit is refused
        before it queues for the write lock behind other creates (a storm of refused creates must not slow
        everyone's). `_queue` counts again, exactly. A retry with an Idempotency-Key takes none: it may be asking
        for a run that is already counted."""
        if idempotency_key is None:
            return self.limits.run_place(principal)
        return contextlib.nullcontext()

    async def _streamed(
        self, run_id: str, stream: bool, start: Callable[[Subscription | None], Awaitable[Started]]
    ) -> Started:
        """`start` the run with, when `stream`, a subscription to its events taken before: before any
        transaction, so no event is missed and the subscription's own reads never wait for that transaction's
        connection. It is closed again if starting fails or has nothing to stream (an idempotent replay)."""
        events = await self.bus.subscribe(run_id) if stream else None
        try:
            started = await start(events)
        except BaseException:
            if events is not None:
                await events.close()
            raise
        if events is not None and started.events is None:
            await events.close()
        return started

    async def create(
        self,
        principal: Principal,
        thread_id: str,
        body: RunCreate,
        *,
        idempotency_key: Idempotency | None,
        stream: bool,
    ) -> Started:
        """Queue a run of an assistant on a thread (after the request's additional messages)."""
        run_id = new_id("run")
        async with self._run_place(principal, idempotency_key):
            return await self._streamed(
                run_id,
                stream,
                lambda events: self._started(
                    lambda start: self._create(principal, thread_id, body, idempotency_key, run_id, events, start)
                ),
            )

    async def _create(
        self,
        principal: Principal,
        thread_id: str,
        body: RunCreate,
        idempotency_key: Idempotency | None,
        run_id: str,
        events: Subscription | None,
        start: RunStart | None,
    ) -> tuple[Started, bool]:
        async with self.db.write() as session:
            active = await thread_active_run(session, principal, thread_id)
            if earlier := await replayed(session, idempotency_key, RunRepository(session, principal.project_id)):
                return Started(wire.run(earlier), [], None), False
            assistant = await require_assistant(session, principal.project_id, body.assistant_id)
            instructions = run_instructions(assistant, body, body.additional_instructions)
            run = new_run(self.registry, run_id, thread_id, assistant, body, instructions)
            require_idle_thread(thread_id, active)
            files_queued = False
            if body.additional_messages:
                created = now()
                added = await MessageRepository(session, principal.project_id).add_many(
                    [new_message_row(thread_id, message, created) for message in body.additional_messages]
                )
                files_queued = await index_attachments(session, principal.project_id, thread_id, added)
            started = await self._queue(session, principal, run, idempotency_key, events, [], start)
        return started, files_queued

    async def create_thread_and_run(
        self, principal: Principal, body: ThreadAndRunCreate, *, idempotency_key: Idempotency | None, stream: bool
    ) -> Started:
        """Make a thread and queue a run on it, in one transaction."""
        run_id = new_id("run")
        async with self._run_place(principal, idempotency_key):
            return await self._streamed(
                run_id,
                stream,
                lambda events: self._started(
                    lambda start: self._create_thread_and_run(principal, body, idempotency_key, run_id, events, start)
                ),
            )

    async def _create_thread_and_run(
        self,
        principal: Principal,
        body: ThreadAndRunCreate,
        idempotency_key: Idempotency | None,
        run_id: str,
        events: Subscription | None,
        start: RunStart | None,
    ) -> tuple[Started, bool]:
        spec = body.thread or ThreadCreate()
        async with self.db.write() as session:
            if earlier := await replayed(session, idempotency_key, RunRepository(session, principal.project_id)):
                return Started(wire.run(earlier), [], None), False
            assistant = await require_assistant(session, principal.project_id, body.assistant_id)
            thread, files_queued = await add_thread(
                session, principal.project_id, spec, spec.tool_resources or body.tool_resources
            )
            run = new_run(self.registry, run_id, thread.id, assistant, body, run_instructions(assistant, body))
            prelude = [Event("thread.created", wire.thread(thread))]
            started = await self._queue(session, principal, run, idempotency_key, events, prelude, start)
        return started, files_queued

    async def _queue(
        self,
        session,
        principal: Principal,
        run: tables.Run,
        key: Idempotency | None,
        events: Subscription | None,
        prelude: list[Event],
        start: RunStart | None,
    ) -> Started:
        await self.limits.check_active_runs(session, principal)
        body = wire.run(run)  # as queued, even when it starts at once (`start`)
        if start is not None:
            start.lease(run)
        await insert_run(session, principal, run, key)
        prelude = [*prelude, Event("thread.run.created", body), Event("thread.run.queued", body)]
        return Started(body, prelude, events)

    async def _started(self, create: Callable[[RunStart | None], Awaitable[tuple[Started, bool]]]) -> Started:
        """`create` a run (it says whether files were queued too), started by this process's worker at once when
        it has room (see the module docstring), else queued and the worker woken."""
        start = self.start_directly()
        try:
            started, files_queued = await create(start)
        except BaseException:
            if start is not None:
                start.release()
            raise
        began = start is not None and start.begin()
        if not began or files_queued:
            self.wake(runs=not began, files=files_queued)
        return started

    # -- read, modify -----------------------------------------------------------------------------------

    async def _require_run(self, session, principal: Principal, thread_id: str, run_id: str) -> tables.Run:
        await check_thread(session, principal, thread_id)
        run = await RunRepository(session, principal.project_id).get(run_id, thread_id=thread_id)
        if run is None:
            raise NotFound.for_object("run", run_id)
        return run

    async def retrieve(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        """One run of the thread."""
        async with self.db.read() as session:
            return wire.run(await self._require_run(session, principal, thread_id, run_id))

    async def list(self, principal: Principal, thread_id: str, request: PageRequest) -> Page[dict[str, Any]]:
        """A page of the thread's runs."""
        async with self.db.read() as session:
            page = await RunRepository(session, principal.project_id).page(request, thread_id=thread_id)
            if not page.items:  # only an empty page may mean the thread is not the caller's
                await check_thread(session, principal, thread_id)
        return Page([wire.run(row) for row in page.items], page.has_more)

    async def modify(
        self, principal: Principal, thread_id: str, run_id: str, metadata: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Replace the run's metadata."""
        async with self.db.write() as session:
            run = await self._require_run(session, principal, thread_id, run_id)
            run.metadata_ = metadata or {}
        return wire.run(run)

    # -- cancel, tool outputs ---------------------------------------------------------------------------

    async def cancel(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        """End a queued or waiting run at once; ask the worker of one in progress to stop (`cancelling`)."""
        async with self.db.write() as session:
            run = await self._require_run(session, principal, thread_id, run_id)
            runs = RunRepository(session, principal.project_id)
            moment = now()
            # queued or waiting for outputs: no worker has it, so it ends here; in progress: its worker ends it
            ended = await runs.end(
                run_id,
                RunStatus.CANCELLED,
                moment,
                sources={RunStatus.QUEUED, RunStatus.REQUIRES_ACTION},
                cancelled_at=moment,
                required_action=None,
                expires_at=None,
            )
            if not ended and not await runs.transition(run_id, {RunStatus.IN_PROGRESS}, status=RunStatus.CANCELLING):
                raise InvalidRequest(
                    f"Cannot cancel run with status '{run.status}'.", param="run_id", code="run_not_active"
                )  # either way `run`, loaded above, is refreshed now
        if ended:
            metrics.observe_run_end(RunStatus.CANCELLED, run.created_at, time.time())
        self.bus.publish(run.id, f"thread.run.{run.status}", wire.run(run))
        return wire.run(run)

    async def submit_tool_outputs(
        self, principal: Principal, thread_id: str, run_id: str, body: SubmitToolOutputs, *, stream: bool
    ) -> Started:
        """Give a run waiting on function calls their outputs and queue it again."""
        return await self._streamed(
            run_id, stream, lambda events: self._submit_tool_outputs(principal, thread_id, run_id, body, events)
        )

    async def _submit_tool_outputs(
        self, principal: Principal, thread_id: str, run_id: str, body: SubmitToolOutputs, events: Subscription | None
    ) -> Started:
        async with self.db.write() as session:
            run = await self._require_run(session, principal, thread_id, run_id)
            check_tool_outputs(run, body)
            await complete_tool_calls(session, principal.project_id, run_id, body)
            runs = RunRepository(session, principal.project_id)
            # a fresh job: its attempts count interruptions of this leg, not the tool rounds before it
            if not await runs.transition(
                run_id,
                sources_of(RunStatus.QUEUED),
                status=RunStatus.QUEUED,
                required_action=None,
                expires_at=None,
                attempts=0,
            ):
                raise InvalidRequest("The run changed status; tool outputs were not accepted.", param="run_id")
            # `run`, loaded above, is refreshed now
        body_out = wire.run(run)
        self.wake(runs=True, files=False)
        return Started(body_out, [Event("thread.run.queued", body_out)], events)

    # -- steps ------------------------------------------------------------------------------------------

    async def list_steps(
        self, principal: Principal, thread_id: str, run_id: str, request: PageRequest, include: Sequence[str] = ()
    ) -> Page[dict[str, Any]]:
        """A page of the run's steps."""
        async with self.db.read() as session:
            await self._require_run(session, principal, thread_id, run_id)
            page = await RunStepRepository(session, principal.project_id).page(request, run_id=run_id)
        return Page([wire.run_step(row, include) for row in page.items], page.has_more)

    async def retrieve_step(
        self, principal: Principal, thread_id: str, run_id: str, step_id: str, include: Sequence[str] = ()
    ) -> dict[str, Any]:
        """One step of the run."""
        async with self.db.read() as session:
            await self._require_run(session, principal, thread_id, run_id)
            step = await RunStepRepository(session, principal.project_id).get(step_id, run_id=run_id)
        if step is None:
            raise NotFound.for_object("run step", step_id)
        return wire.run_step(step, include)
