"""One run, from claimed to where it stops: a terminal status, requires_action, or a lost lease.

The executor runs the stages of the generation pipeline for the run, in order, each in its own unit:

    start       queued → in_progress (or finish a cancel; drop what a crashed attempt left half-done)
    resolve     the model's engine and the run's app strategy        generation/pipeline.py
    gather      what the run's tools give the model first            tools/registry.py
    prompt      instructions, thread, earlier tool rounds, fitted    runtime/prompt.py
    generate    stream the answer, checking for cancel and the lease generation/pipeline.py
    record      the reply, the tool calls, the run's new status      runtime/recorder.py, tools/registry.py

It names no tool and no preset: tools act through the registry's hooks, presets through the run's strategy.
The lease is renewed on a clock of its own (runtime/lease.py) while the run executes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from assistd import metrics
from assistd.apps.strategies import Strategy
from assistd.clock import now
from assistd.engines.base import Chunk, GenerationRequest, TextEngine
from assistd.engines.registry import ModelRegistry
from assistd.errors import AssistdError, InvalidRequest, StoreUnavailable
from assistd.events.bus import EventBus
from assistd.generation.collect import Collected
from assistd.generation.pipeline import alongside, resolve, stream
from assistd.lifecycle import RunStatus
from assistd.runtime import prompt
from assistd.runtime.lease import lease_kept
from assistd.runtime.recorder import Ending, Reply, RunRecorder, added_usage, cancelled, failed
from assistd.services.usage import UsageService
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.queue import RunQueue
from assistd.tools.base import Gathered
from assistd.tools.registry import ToolRegistry, run_tools

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
CHECK_INTERVAL_SECONDS = 0.25


@dataclass(frozen=True)
class ExecutorSettings:
    lease_seconds: float
    tool_output_timeout_seconds: int
    max_tool_rounds: int = 8


class LeaseLost(Exception):
    """Another worker took the run over: stop touching it."""


@dataclass
class Turn:
    """One model round of a run, as the stages build it up."""

    run: tables.Run
    engine: TextEngine
    strategy: Strategy
    request: GenerationRequest
    steps: list[tables.RunStep]
    gathered: Gathered = field(default_factory=Gathered)


class RunExecutor:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        bus: EventBus,
        settings: ExecutorSettings,
        tools: ToolRegistry | None = None,
        usage: UsageService | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.tools = tools if tools is not None else run_tools()
        self.db = db
        self.queue = RunQueue(db)
        self.recorder = RunRecorder(db, bus, usage, settings.tool_output_timeout_seconds)

    async def execute(self, run: tables.Run, worker_id: str, *, new: bool = False) -> None:
        """Execute a claimed run while keeping its lease; release it when the run stops here. A `new` run was
        created just now, started: it has no steps yet to read."""
        lost = asyncio.Event()
        renew = functools.partial(self.queue.renew, run.id, worker_id)
        try:
            async with lease_kept(f"run {run.id}", renew, self.settings.lease_seconds, lost.set):
                await self._execute(run, lost, new)
        except LeaseLost:
            return
        except asyncio.CancelledError:  # this worker is stopping: another may take the run over at once
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.release(run.id, worker_id))
            raise
        except Exception as exc:
            if not await self._failed_unexpectedly(run, exc):
                return
        await self.queue.release(run.id, worker_id)

    async def _failed_unexpectedly(self, run: tables.Run, exc: Exception) -> bool:
        """Fail the run after an error of ours; False when the store is down (a worker retries it later)."""
        failure: Exception = exc
        if not isinstance(exc, StoreUnavailable):
            log.exception("run %s failed unexpectedly", run.id, exc_info=exc)
            try:
                await self.recorder.finish(run, failed("server_error", "The run failed because of an internal error."))
                return True
            except StoreUnavailable as unavailable:
                failure = unavailable
        # the lease runs out, and a worker starts the run again once the database is back
        log.warning("run %s: database unavailable (%s); it will be retried", run.id, type(failure).__name__)
        return False

    async def _execute(self, run: tables.Run, lost: asyncio.Event, new: bool) -> None:
        started = await self._start(run)
        if started is None:
            return
        turn = await self._prepare(started, new)
        if turn is not None:
            await self._generate(turn, lost)

    # -- start ------------------------------------------------------------------------------------------

    async def _start(self, run: tables.Run) -> tables.Run | None:
        """The run in progress, or None when it stopped here (cancelled, interrupted too often, moved on)."""
        if run.status == RunStatus.CANCELLING:
            await self.recorder.finish(run, cancelled())
            return None
        if run.attempts > MAX_ATTEMPTS:
            message = f"The run was interrupted {MAX_ATTEMPTS} times and was stopped."
            await self.recorder.finish(run, failed("server_error", message))
            return None
        if run.status == RunStatus.IN_PROGRESS and run.attempts == 1:  # started by its claim or at its creation
            self.recorder.announce_moved(run)
            return run
        if run.status == RunStatus.IN_PROGRESS:  # a worker died holding it: drop what that attempt left half-done
            await self.recorder.discard_unfinished(run)
            return run
        return await self.recorder.move(run, RunStatus.IN_PROGRESS, started_at=run.started_at or now())

    # -- resolve, gather, prompt ------------------------------------------------------------------------

    async def _prepare(self, run: tables.Run, new: bool = False) -> Turn | None:
        """The run's next model round, ready to generate; None when the run stopped instead."""
        try:
            resolved = resolve(self.registry, run.model, run.app)
            steps = [] if new else await self.recorder.steps(run)
            room = prompt.gathered_room(resolved.engine)
            gathered = await self.tools.gather(run, steps, self.recorder, room)
            messages = await prompt.thread_messages(self.db, run)
            request = prompt.build(
                run,
                messages,
                steps,
                self.tools,
                gathered,
                self.settings.max_tool_rounds,
                late_system=resolved.engine.late_system_messages,
            )
            fitted = await prompt.fitted(run, resolved.engine, request)
        except StoreUnavailable:
            raise  # not the run's fault: it is taken up again once the database is back
        except AssistdError as exc:
            await self.recorder.finish(run, failed("invalid_prompt", exc.message))
            return None
        if fitted is None:
            await self.recorder.move(run, RunStatus.INCOMPLETE, incomplete_details={"reason": "max_prompt_tokens"})
            return None
        turn = Turn(run, resolved.engine, resolved.strategy, resolved.strategy.bound_answer(fitted), steps, gathered)
        return await self._condensed(turn)

    async def _condensed(self, turn: Turn) -> Turn | None:
        """The turn with its input condensed when the run's strategy does that (the summariser's long texts)."""
        run = turn.run
        try:
            condensed = await turn.strategy.fit(turn.engine, turn.request, prompt.budget(run, turn.engine))
        except StoreUnavailable:
            raise
        except AssistdError as exc:
            await self.recorder.finish(run, failed("server_error", exc.message))
            return None
        if condensed is None:
            return turn
        if condensed.rounds:
            log.info("run %s: summarised its text part by part in %d round(s)", run.id, condensed.rounds)
            run.usage = added_usage(run, condensed.usage)  # counted into the run's usage with the answer's
            await self.recorder.record_usage(run, condensed.usage)
        return replace(turn, request=condensed.request)

    # -- generate and record ----------------------------------------------------------------------------

    async def _generate(self, turn: Turn, lost: asyncio.Event) -> None:
        """Stream the model's answer into the reply, then record what it said."""
        run, reply, collected = turn.run, None, Collected()
        began = time.perf_counter()
        next_check = time.monotonic() + CHECK_INTERVAL_SECONDS
        try:
            generation = stream(turn.engine, turn.request, collected)
            chunks: AsyncIterator[Chunk] = generation
            if not turn.request.offers_tools:  # the round ends in a reply: it is written while the prompt is read
                reply, chunks = await alongside(generation, self.recorder.open_reply(run))
            async for chunk in chunks:
                if chunk.text:
                    reply = reply or await self.recorder.open_reply(run)
                    self.recorder.add_text(run, reply, chunk.text)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + CHECK_INTERVAL_SECONDS
                    if await self._should_stop(run, lost, reply):
                        return
        except StoreUnavailable:
            raise
        except AssistdError as exc:
            code = "invalid_prompt" if isinstance(exc, InvalidRequest) else "server_error"
            await self.recorder.finish(run, failed(code, exc.message), reply)
            return
        metrics.observe_generation(run.model, collected.usage.completion_tokens, time.perf_counter() - began)
        if not await self._should_stop(run, lost, reply):
            await self._record(turn, lost, collected, reply)

    async def _should_stop(self, run: tables.Run, lost: asyncio.Event, reply: Reply | None) -> bool:
        """Whether generation must stop: the lease is lost (LeaseLost), or the run is cancelled (recorded here)."""
        if lost.is_set():
            raise LeaseLost
        if await self.recorder.status(run) != RunStatus.CANCELLING:
            return False
        await self.recorder.finish(run, cancelled(), reply)
        return True

    async def _record(self, turn: Turn, lost: asyncio.Event, collected: Collected, reply: Reply | None) -> None:
        """Record the round: hand its tool calls to their tools, or end the run with the reply."""
        run, usage = turn.run, collected.usage
        if collected.tool_calls and turn.request.tool_choice != "none":  # calls nobody asked for are dropped
            if await self.tools.take_calls(run, collected.calls(), usage, turn.steps, self.recorder):
                return
            log.info("run %s: the model repeated calls whose outputs it has; it answers in text", run.id)
            run.usage = added_usage(run, usage)
            await self._generate(replace(turn, request=replace(turn.request, tool_choice="none")), lost)
            return
        reply = reply or await self.recorder.open_reply(run)
        citation = turn.gathered.cite(reply.text)
        if citation is not None:
            self.recorder.add_text(run, reply, citation.marker, citation.annotations)
        values = {"usage": added_usage(run, usage)}
        if collected.finish_reason == "length" and run.max_completion_tokens is not None:
            ending = Ending(RunStatus.INCOMPLETE, {**values, "incomplete_details": {"reason": "max_completion_tokens"}})
            ending = replace(ending, incomplete="max_tokens")
        else:
            ending = Ending(RunStatus.COMPLETED, {**values, "completed_at": now()})
        await self.recorder.finish(run, ending, reply, usage, citation.annotations if citation else None)
