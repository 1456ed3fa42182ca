"""Runs and run steps: create (and create-and-run), list, retrieve, modify, cancel, submit tool outputs.

Creating a run only queues it: a worker executes it (runtime/), never the HTTP request. A caller that wants
the events subscribes to the bus before the run is committed, so it cannot miss the first of them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from assistd import metrics
from assistd.engines.base import GenerationRequest
from assistd.engines.registry import ModelRegistry
from assistd.errors import InvalidRequest, NotFound
from assistd.ids import new_id
from assistd.lifecycle import RunStatus, StepStatus, sources_of
from assistd.events.bus import Event, EventBus, Subscription
from assistd.schemas.runs import RunCreate, RunOptions, SubmitToolOutputs, ThreadAndRunCreate
from assistd.schemas.threads import ThreadCreate
from assistd.protocol import wire
from assistd.clock import now
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.limits import LimitService
from assistd.services.messages import new_message_row, require_thread
from assistd.services.principal import Principal
from assistd.services.serialize import to_stored
from assistd.services.threads import add_thread
from assistd.services.vector_stores import index_attachments
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import (
    AssistantRepository,
    MessageRepository,
    RunRepository,
    RunStepRepository,
)
from assistd.tools.function import constraints


@dataclass
class Started:
    """What a create or submit returns: the run, and, for a streaming caller, the events in order."""

    run: dict[str, Any]
    prelude: list[Event]
    events: Subscription | None


def _pick(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


class RunService:
    def __init__(
        self, db: Database, registry: ModelRegistry, bus: EventBus, wake: Callable[[], None], limits: LimitService
    ) -> None:
        self.db = db
        self.registry = registry
        self.bus = bus
        self.wake = wake
        self.limits = limits

    # -- create -----------------------------------------------------------------------------------------

    def _new_run(
        self, run_id: str, thread_id: str, assistant: tables.Assistant, body: RunOptions, instructions: str
    ) -> tables.Run:
        model = body.model or assistant.model
        engine = self.registry.text(model)  # an unknown model is the caller's error now, not a failed run later
        truncation = to_stored(body.truncation_strategy) or {"type": "auto", "last_messages": None}
        run = tables.Run(
            id=run_id,
            thread_id=thread_id,
            assistant_id=assistant.id,
            created_at=now(),
            status=RunStatus.QUEUED,
            model=model,
            instructions=instructions,
            tools=to_stored(body.tools) if body.tools is not None else assistant.tools,
            tool_resources=assistant.tool_resources,
            metadata_=body.metadata or {},
            temperature=_pick(body.temperature, assistant.temperature),
            top_p=_pick(body.top_p, assistant.top_p),
            response_format=to_stored(_pick(body.response_format, assistant.response_format)),
            tool_choice=to_stored(body.tool_choice),
            parallel_tool_calls=_pick(body.parallel_tool_calls, True),
            max_prompt_tokens=body.max_prompt_tokens,
            max_completion_tokens=body.max_completion_tokens,
            truncation_strategy={"last_messages": None, **truncation},
            response_language=body.response_language or assistant.response_language,
            app=assistant.app,
            attempts=0,
        )
        engine.check(GenerationRequest(messages=[], **constraints(run, rounds=0, max_rounds=1)))  # schemas: 400 now
        return run

    async def _assistant(self, session, principal: Principal, assistant_id: str) -> tables.Assistant:
        assistant = await AssistantRepository(session, principal.project_id).get(assistant_id)
        if assistant is None:
            raise NotFound.for_object("assistant", assistant_id)
        return assistant

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
        run_id = new_id("run")
        async with self._run_place(principal, idempotency_key):
            return await self._streamed(
                run_id, stream, lambda events: self._create(principal, thread_id, body, idempotency_key, run_id, events)
            )

    async def _create(
        self,
        principal: Principal,
        thread_id: str,
        body: RunCreate,
        idempotency_key: Idempotency | None,
        run_id: str,
        events: Subscription | None,
    ) -> Started:
        async with self.db.write() as session:
            thread = await require_thread(session, principal, thread_id)
            if earlier := await replayed(session, idempotency_key, RunRepository(session, principal.project_id)):
                return Started(wire.run(earlier), [], None)
            assistant = await self._assistant(session, principal, body.assistant_id)
            instructions = _pick(body.instructions, assistant.instructions) or ""
            if body.additional_instructions:
                instructions = f"{instructions}\n\n{body.additional_instructions}".strip()
            run = self._new_run(run_id, thread_id, assistant, body, instructions)
            await self._ensure_idle(session, principal, thread_id)
            if body.additional_messages:
                created = now()
                added = await MessageRepository(session, principal.project_id).add_many(
                    [new_message_row(thread_id, message, created) for message in body.additional_messages]
                )
                await index_attachments(session, principal.project_id, thread, added)
            started = await self._queue(session, principal, run, idempotency_key, events, prelude=[])
        self.wake()
        return started

    async def create_thread_and_run(
        self, principal: Principal, body: ThreadAndRunCreate, *, idempotency_key: Idempotency | None, stream: bool
    ) -> Started:
        run_id = new_id("run")
        async with self._run_place(principal, idempotency_key):
            return await self._streamed(
                run_id,
                stream,
                lambda events: self._create_thread_and_run(principal, body, idempotency_key, run_id, events),
            )

    async def _create_thread_and_run(
        self,
        principal: Principal,
        body: ThreadAndRunCreate,
        idempotency_key: Idempotency | None,
        run_id: str,
        events: Subscription | None,
    ) -> Started:
        spec = body.thread or ThreadCreate()
        async with self.db.write() as session:
            if earlier := await replayed(session, idempotency_key, RunRepository(session, principal.project_id)):
                return Started(wire.run(earlier), [], None)
            assistant = await self._assistant(session, principal, body.assistant_id)
            thread = await add_thread(session, principal.project_id, spec, spec.tool_resources or body.tool_resources)
            instructions = _pick(body.instructions, assistant.instructions) or ""
            run = self._new_run(run_id, thread.id, assistant, body, instructions)
            prelude = [Event("thread.created", wire.thread(thread))]
            started = await self._queue(session, principal, run, idempotency_key, events, prelude=prelude)
        self.wake()
        return started

    async def _ensure_idle(self, session, principal: Principal, thread_id: str) -> None:
        active = await RunRepository(session, principal.project_id).active_for_thread(thread_id)
        if active is not None:
            raise InvalidRequest(
                f"Thread {thread_id} already has an active run {active.id}.", param="thread_id", code="run_active"
            )

    async def _queue(
        self,
        session,
        principal: Principal,
        run: tables.Run,
        key: Idempotency | None,
        events: Subscription | None,
        prelude: list[Event],
    ) -> Started:
        await self.limits.check_active_runs(session, principal)
        run.api_key_id = principal.key_id
        try:
            await RunRepository(session, principal.project_id).add(run)
            await remember(session, key, principal.project_id, run)
            await session.flush()
        except IntegrityError as exc:  # the one-active-run index: a concurrent create won
            raise InvalidRequest(
                f"Thread {run.thread_id} already has an active run.", param="thread_id", code="run_active"
            ) from exc
        body = wire.run(run)
        prelude = [*prelude, Event("thread.run.created", body), Event("thread.run.queued", body)]
        return Started(body, prelude, events)

    # -- read, modify -----------------------------------------------------------------------------------

    async def _require_run(self, session, principal: Principal, thread_id: str, run_id: str) -> tables.Run:
        await require_thread(session, principal, thread_id)
        run = await RunRepository(session, principal.project_id).get(run_id, tables.Run.thread_id == thread_id)
        if run is None:
            raise NotFound.for_object("run", run_id)
        return run

    async def retrieve(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        async with self.db.read() as session:
            return wire.run(await self._require_run(session, principal, thread_id, run_id))

    async def list(self, principal: Principal, thread_id: str, request: PageRequest) -> Page[dict[str, Any]]:
        async with self.db.read() as session:
            await require_thread(session, principal, thread_id)
            page = await RunRepository(session, principal.project_id).page(request, tables.Run.thread_id == thread_id)
        return Page([wire.run(row) for row in page.items], page.has_more)

    async def modify(
        self, principal: Principal, thread_id: str, run_id: str, metadata: dict[str, Any] | None
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            run = await self._require_run(session, principal, thread_id, run_id)
            run.metadata_ = metadata or {}
        return wire.run(run)

    # -- cancel, tool outputs ---------------------------------------------------------------------------

    async def cancel(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
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
                )
            await session.refresh(run)
        if ended:
            metrics.observe_run_end(RunStatus.CANCELLED, run.created_at, time.time())
        self.bus.publish(run.id, f"thread.run.{run.status}", wire.run(run))
        return wire.run(run)

    async def submit_tool_outputs(
        self, principal: Principal, thread_id: str, run_id: str, body: SubmitToolOutputs, *, stream: bool
    ) -> Started:
        return await self._streamed(
            run_id, stream, lambda events: self._submit_tool_outputs(principal, thread_id, run_id, body, events)
        )

    async def _submit_tool_outputs(
        self, principal: Principal, thread_id: str, run_id: str, body: SubmitToolOutputs, events: Subscription | None
    ) -> Started:
        async with self.db.write() as session:
            run = await self._require_run(session, principal, thread_id, run_id)
            if run.status != RunStatus.REQUIRES_ACTION:
                raise InvalidRequest(
                    f"Runs in status '{run.status}' do not accept tool outputs.",
                    param="run_id",
                    code="run_not_requires_action",
                )
            assert run.required_action is not None  # set whenever a run requires action
            pending = [call["id"] for call in run.required_action["submit_tool_outputs"]["tool_calls"]]
            given = [output.tool_call_id for output in body.tool_outputs]
            if sorted(given) != sorted(pending):
                missing, unknown = set(pending) - set(given), set(given) - set(pending)
                problem = (
                    f"missing outputs for {sorted(missing)}"
                    if missing
                    else f"unknown or repeated tool call ids {sorted(unknown) or given}"
                )
                raise InvalidRequest(
                    f"Tool outputs must answer every pending tool call once: {problem}.", param="tool_outputs"
                )
            outputs = {output.tool_call_id: output.output for output in body.tool_outputs}
            for step in await RunStepRepository(session, principal.project_id).for_run(run_id):
                if step.type == "tool_calls" and step.status == StepStatus.IN_PROGRESS:
                    calls = [
                        {**call, "function": {**call["function"], "output": outputs.get(call["id"])}}
                        for call in step.step_details["tool_calls"]
                    ]
                    step.step_details = {"type": "tool_calls", "tool_calls": calls}
                    step.status, step.completed_at = StepStatus.COMPLETED, now()
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
            await session.refresh(run)
        body_out = wire.run(run)
        self.wake()
        return Started(body_out, [Event("thread.run.queued", body_out)], events)

    # -- steps ------------------------------------------------------------------------------------------

    async def list_steps(
        self, principal: Principal, thread_id: str, run_id: str, request: PageRequest, include: Sequence[str] = ()
    ) -> Page[dict[str, Any]]:
        async with self.db.read() as session:
            await self._require_run(session, principal, thread_id, run_id)
            page = await RunStepRepository(session, principal.project_id).page(request, tables.RunStep.run_id == run_id)
        return Page([wire.run_step(row, include) for row in page.items], page.has_more)

    async def retrieve_step(
        self, principal: Principal, thread_id: str, run_id: str, step_id: str, include: Sequence[str] = ()
    ) -> dict[str, Any]:
        async with self.db.read() as session:
            await self._require_run(session, principal, thread_id, run_id)
            step = await RunStepRepository(session, principal.project_id).get(step_id, tables.RunStep.run_id == run_id)
        if step is None:
            raise NotFound.for_object("run step", step_id)
        return wire.run_step(step, include)
