"""One run, from claimed to where it stops: a terminal status, requires_action, or a lost lease.

The executor turns the thread (and this run's earlier tool calls and their outputs) into a generation request,
streams the engine's answer into a message (or a tool-calls step), and moves the run through the state
machine with guarded updates, publishing `thread.*` events as it goes. A heartbeat renews its lease on a
clock of its own; while the model generates, the executor checks for cancellation and for a lost lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from assistd import languages, metrics
from assistd.apps.strategies import strategy_for
from assistd.engines.base import GenerationRequest, Usage
from assistd.engines.prompting import content_text
from assistd.engines.registry import ModelRegistry
from assistd.errors import AssistdError, InvalidRequest, StoreUnavailable
from assistd.ids import new_id
from assistd.lifecycle import STEP_ENDED_AT, TERMINAL_RUN, MessageStatus, RunStatus, StepStatus, sources_of
from assistd.retrieval.search import Hit
from assistd.events.bus import EventBus
from assistd.protocol import wire
from assistd.clock import now
from assistd.services.principal import Principal
from assistd.services.usage import UsageService, usage_record
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.queue import RunQueue
from assistd.store.repositories import MessageRepository, RunRepository, RunStepRepository
from assistd.tools import file_search
from assistd.tools.file_search import FileSearch
from assistd.tools.function import call_key, constraints, function_calls

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
ANSWER_ROOM_TOKENS = 512  # kept free for the answer when old messages must go
CHECK_INTERVAL_SECONDS = 0.25
PASSAGE_CHARS_PER_CONTEXT_TOKEN = 2  # file_search passages may take about half the context (~4 chars a token)


@dataclass(frozen=True)
class ExecutorSettings:
    lease_seconds: float
    tool_output_timeout_seconds: int
    max_tool_rounds: int = 8


class LeaseLost(Exception):
    """Another worker took the run over: stop touching it."""


def _new_step(
    run: tables.Run, created: int, details: dict[str, Any], status: StepStatus = StepStatus.IN_PROGRESS, **values: Any
) -> tables.RunStep:
    """A step of `run` of the type its details name."""
    return tables.RunStep(
        id=new_id("step"),
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        created_at=created,
        type=details["type"],
        status=status,
        metadata_={},
        step_details=details,
        **values,
    )


def _prompt_budget(run: tables.Run, engine: Any) -> int | None:
    """The most prompt tokens a run may use: the context less room for the answer, and max_prompt_tokens."""
    context = engine.context_length
    room = min(run.max_completion_tokens or ANSWER_ROOM_TOKENS, context // 4) if context else 0
    budgets = [limit for limit in (run.max_prompt_tokens, context - room if context else None) if limit]
    return min(budgets) if budgets else None


def _text_of(message: tables.Message) -> str:
    return "\n".join(block["text"]["value"] for block in message.content if block.get("type") == "text")


def _text_delta(message_id: str, text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A thread.message.delta event adding `text` (and the annotations that point into it) to the message."""
    return {
        "id": message_id,
        "object": "thread.message.delta",
        "delta": {
            "content": [
                {
                    "index": 0,
                    "type": "text",
                    "text": {
                        "value": text,
                        "annotations": [{"index": i, **a} for i, a in enumerate(annotations or [])],
                    },
                }
            ]
        },
    }


async def _transition(session: Any, run: tables.Run, status: RunStatus, values: dict[str, Any]) -> tables.Run | None:
    """The guarded move of `run` to `status` inside `session`: the updated row, or None if it had moved on."""
    runs = RunRepository(session, run.project_id)
    if not await runs.transition(run.id, sources_of(status), status=status, **values):
        return None
    if status in TERMINAL_RUN:
        metrics.observe_run_end(status, run.created_at, time.time())
    return await runs.get(run.id)


def _owner(run: tables.Run) -> Principal:
    """Whose run it is: its project, and the key that created it (for usage and token limits)."""
    return Principal(project_id=run.project_id, key_id=run.api_key_id or "")


class RunExecutor:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        bus: EventBus,
        settings: ExecutorSettings,
        file_search: FileSearch | None = None,
        usage: UsageService | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.bus = bus
        self.settings = settings
        self.file_search = file_search
        self.usage = usage
        self.queue = RunQueue(db)

    # -- state changes ----------------------------------------------------------------------------------

    async def _move(self, run: tables.Run, status: RunStatus, **values: Any) -> tables.Run | None:
        """Guarded transition to `status`; publishes thread.run.<status>. None if the run had moved on."""
        async with self.db.write() as session:
            row = await _transition(session, run, status, values)
        if row is not None:
            self.bus.publish(run.id, f"thread.run.{status}", wire.run(row))
        return row

    async def _status(self, run: tables.Run) -> str:
        async with self.db.read() as session:
            row = await RunRepository(session, run.project_id).get(run.id)
        return row.status if row else RunStatus.CANCELLED

    # -- the run ----------------------------------------------------------------------------------------

    async def execute(self, run: tables.Run, worker_id: str) -> None:
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(run.id, worker_id, lost))
        try:
            await self._execute(run, worker_id, lost)
        except LeaseLost:
            log.warning("run %s: lease lost, another worker continues it", run.id)
            return
        except asyncio.CancelledError:  # this worker is stopping: another may take the run over at once
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.release(run.id, worker_id))
            raise
        except Exception as exc:
            try:
                if isinstance(exc, StoreUnavailable):
                    raise
                log.exception("run %s failed unexpectedly", run.id)
                await self._fail(run, "server_error", "The run failed because of an internal error.")
            except Exception as failure:
                if not isinstance(failure, StoreUnavailable):
                    raise
                # the lease runs out, and a worker starts the run again once the database is back
                log.warning("run %s: database unavailable (%s); it will be retried", run.id, type(failure).__name__)
                return
        finally:
            heartbeat.cancel()
        await self.queue.release(run.id, worker_id)

    async def _heartbeat(self, run_id: str, worker_id: str, lost: asyncio.Event) -> None:
        """Renew the lease on a clock of its own (a run waiting for the model makes no tokens, but is alive)."""
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                renewed = await self.queue.renew(run_id, worker_id, time.time() + self.settings.lease_seconds)
            except Exception:  # a busy store: try again at the next beat, the lease still has two beats left
                log.warning("run %s: lease renewal failed", run_id, exc_info=True)
                continue
            if not renewed:
                lost.set()
                return

    async def _execute(self, run: tables.Run, worker_id: str, lost: asyncio.Event) -> None:
        if run.status == RunStatus.CANCELLING:
            await self._finish_cancel(run, None, None)
            return
        if run.attempts > MAX_ATTEMPTS:
            await self._fail(run, "server_error", f"The run was interrupted {MAX_ATTEMPTS} times and was stopped.")
            return
        if run.status == RunStatus.IN_PROGRESS:  # a worker died holding it: drop what that attempt left half-done
            await self._discard_unfinished(run)
        else:
            moved = await self._move(run, RunStatus.IN_PROGRESS, started_at=run.started_at or now())
            if moved is None:
                return
            if run.status == RunStatus.QUEUED and run.started_at is None:
                metrics.QUEUE_WAIT.observe(max(time.time() - run.created_at, 0.0))
            run = moved
        try:
            strategy = strategy_for(run.app)
            engine = strategy.engine(self.registry.text(run.model))
            hits = await self._search_files(run)
            request = await self._fit(run, engine, await self._request(run, engine, hits))
        except StoreUnavailable:
            raise  # not the run's fault: it is taken up again once the database is back
        except AssistdError as exc:
            await self._fail(run, "invalid_prompt", exc.message)
            return
        if request is None:
            await self._move(run, RunStatus.INCOMPLETE, incomplete_details={"reason": "max_prompt_tokens"})
            return
        request = strategy.bound_answer(request)
        try:
            condensed = await strategy.fit(engine, request, _prompt_budget(run, engine))
        except StoreUnavailable:
            raise
        except AssistdError as exc:
            await self._fail(run, "server_error", exc.message)
            return
        if condensed is not None:
            request = condensed.request
            if condensed.rounds:
                log.info("run %s: summarised its text part by part in %d round(s)", run.id, condensed.rounds)
                run.usage = wire.usage(condensed.usage)  # counted into the run's usage with the answer's
                await self._record_usage(run, condensed.usage)
        await self._generate(run, lost, engine, request, hits)

    async def _search_files(self, run: tables.Run) -> list[Hit] | None:
        """Run the file_search tool once per run (a resumed run reuses its results); None without the tool."""
        settings = file_search.options(run.tools)
        if settings is None or self.file_search is None:
            return None
        async with self.db.read() as session:
            steps = await RunStepRepository(session, run.project_id).for_run(run.id)
            last_user = await session.scalar(
                select(tables.Message)
                .where(
                    tables.Message.project_id == run.project_id,
                    tables.Message.thread_id == run.thread_id,
                    tables.Message.role == "user",
                )
                .order_by(tables.Message.id.desc())
                .limit(1)
            )
        for step in steps:
            for call in step.step_details.get("tool_calls", []) if step.type == "tool_calls" else []:
                if call["type"] == "file_search":
                    return file_search.hits_of(call)
        hits = await self.file_search.search(run, settings, _text_of(last_user) if last_user else "")
        if hits is None:
            return None
        threshold = (settings.get("ranking_options") or {}).get("score_threshold") or 0.0
        created = now()
        call = wire.file_search_call(new_id("call"), hits, threshold)
        step = _new_step(
            run, created, {"type": "tool_calls", "tool_calls": [call]}, StepStatus.COMPLETED, completed_at=created
        )
        async with self.db.write() as session:
            await RunStepRepository(session, run.project_id).add(step)
        shown = wire.run_step(step)
        self.bus.publish(
            run.id, "thread.run.step.created", {**shown, "status": StepStatus.IN_PROGRESS, "completed_at": None}
        )
        self.bus.publish(run.id, "thread.run.step.completed", shown)
        return hits

    async def _fit(self, run: tables.Run, engine: Any, request: GenerationRequest) -> GenerationRequest | None:
        """Drop the oldest messages (never the instructions, never the last message) until the prompt fits the
        model's context, leaving room for the answer, and `max_prompt_tokens`. None if that limit cannot be met."""
        budget = _prompt_budget(run, engine)
        if budget is None:
            return request
        messages = list(request.messages or [])
        first = 1 if messages and messages[0]["role"] == "system" else 0
        while (tokens := await engine.count_prompt_tokens(replace(request, messages=messages))) is not None:
            if tokens <= budget or len(messages) - first <= 1:
                break
            del messages[first]
            while len(messages) - first > 1 and messages[first]["role"] == "tool":  # no result without its call
                del messages[first]
        if run.max_prompt_tokens and tokens is not None and tokens > run.max_prompt_tokens:
            return None
        return replace(request, messages=messages)

    async def _request(self, run: tables.Run, engine: Any, hits: list[Hit] | None) -> GenerationRequest:
        async with self.db.read() as session:
            messages = list(
                (
                    await session.scalars(
                        select(tables.Message)
                        .where(tables.Message.project_id == run.project_id, tables.Message.thread_id == run.thread_id)
                        .order_by(tables.Message.id)
                    )
                ).all()
            )
            steps = await RunStepRepository(session, run.project_id).for_run(run.id)
        if run.truncation_strategy.get("type") == "last_messages" and run.truncation_strategy.get("last_messages"):
            messages = messages[-run.truncation_strategy["last_messages"] :]
        conversation: list[dict[str, Any]] = []
        system = run.instructions
        if run.response_language:
            system = "\n\n".join(part for part in (system, languages.instruction(run.response_language)) if part)
        if hits is not None:
            room = engine.context_length * PASSAGE_CHARS_PER_CONTEXT_TOKEN if engine.context_length else None
            system = "\n\n".join(part for part in (system, file_search.passages_prompt(hits, room)) if part)
        if system:
            conversation.append({"role": "system", "content": system})
        for message in messages:
            conversation.append({"role": message.role, "content": _text_of(message)})
        for step in steps:
            calls = function_calls(step)
            if not calls:
                continue
            conversation.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                        }
                        for c in calls
                    ],
                }
            )
            for call in calls:
                conversation.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": content_text(call["function"]["output"])}
                )
        rounds = sum(1 for step in steps if function_calls(step))
        return GenerationRequest(
            messages=conversation,
            max_tokens=run.max_completion_tokens,
            temperature=run.temperature,
            top_p=run.top_p,
            **constraints(run, rounds, self.settings.max_tool_rounds),
        )

    async def _generate(
        self, run: tables.Run, lost: asyncio.Event, engine: Any, request: GenerationRequest, hits: list[Hit] | None
    ) -> None:
        message: tables.Message | None = None
        step: tables.RunStep | None = None
        text, finish, usage = "", "stop", Usage(0, 0)
        calls: dict[int, dict[str, Any]] = {}
        began = time.perf_counter()
        next_check = time.monotonic() + CHECK_INTERVAL_SECONDS
        try:
            async for chunk in engine.stream(request):
                if chunk.text:
                    if message is None:
                        message, step = await self._open_message(run)
                    text += chunk.text
                    self.bus.publish(run.id, "thread.message.delta", _text_delta(message.id, chunk.text))
                wire.extend_tool_calls(calls, chunk.tool_calls)
                finish = chunk.finish_reason or finish
                usage = chunk.usage or usage
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + CHECK_INTERVAL_SECONDS
                    if lost.is_set():
                        raise LeaseLost
                    if await self._status(run) == RunStatus.CANCELLING:
                        await self._finish_cancel(run, message, step, text)
                        return
        except InvalidRequest as exc:
            await self._fail(run, "invalid_prompt", exc.message, message, step, text)
            return
        except StoreUnavailable:
            raise
        except AssistdError as exc:
            await self._fail(run, "server_error", exc.message, message, step, text)
            return
        metrics.observe_generation(run.model, usage.completion_tokens, time.perf_counter() - began)
        if await self._status(run) == RunStatus.CANCELLING:
            await self._finish_cancel(run, message, step, text)
            return
        previous = run.usage or {}
        run_usage = wire.usage(
            Usage(
                previous.get("prompt_tokens", 0) + usage.prompt_tokens,
                previous.get("completion_tokens", 0) + usage.completion_tokens,
            )
        )
        if calls and request.tool_choice != "none":  # calls nobody asked for are dropped
            made = [{**call, "function": {**call["function"], "output": None}} for _, call in sorted(calls.items())]
            fresh = await self._fresh_calls(run, made)
            if fresh:
                await self._require_action(run, fresh, usage, run_usage)
                return
            log.info("run %s: the model repeated calls whose outputs it has; it answers in text", run.id)
            run.usage = run_usage
            await self._generate(run, lost, engine, replace(request, tool_choice="none"), hits)
            return
        cut_off = finish == "length" and run.max_completion_tokens is not None
        if message is None:
            message, step = await self._open_message(run)
        annotations: list[dict[str, Any]] = []
        if hits and (citation := file_search.cite(text, hits)) is not None:
            annotations = citation.annotations
            self.bus.publish(run.id, "thread.message.delta", _text_delta(message.id, citation.marker, annotations))
            text += citation.marker
        if cut_off:
            status, values = (
                RunStatus.INCOMPLETE,
                {"usage": run_usage, "incomplete_details": {"reason": "max_completion_tokens"}},
            )
        else:
            status, values = RunStatus.COMPLETED, {"completed_at": now(), "usage": run_usage}
        await self._finish(
            run,
            status,
            values,
            message,
            step,
            text,
            usage,
            incomplete="max_tokens" if cut_off else None,
            annotations=annotations,
        )

    # -- messages and steps -----------------------------------------------------------------------------

    async def _open_message(self, run: tables.Run) -> tuple[tables.Message, tables.RunStep]:
        created = now()
        message = tables.Message(
            id=new_id("message"),
            thread_id=run.thread_id,
            created_at=created,
            role="assistant",
            content=[],
            attachments=[],
            metadata_={},
            status=MessageStatus.IN_PROGRESS,
            assistant_id=run.assistant_id,
            run_id=run.id,
        )
        step = _new_step(run, created, {"type": "message_creation", "message_creation": {"message_id": message.id}})
        async with self.db.write() as session:
            await MessageRepository(session, run.project_id).add(message)
            await RunStepRepository(session, run.project_id).add(step)
        self.bus.publish(run.id, "thread.run.step.created", wire.run_step(step))
        self.bus.publish(run.id, "thread.run.step.in_progress", wire.run_step(step))
        self.bus.publish(run.id, "thread.message.created", wire.message(message))
        self.bus.publish(run.id, "thread.message.in_progress", wire.message(message))
        return message, step

    async def _finish(
        self,
        run: tables.Run,
        status: RunStatus,
        values: dict[str, Any],
        message: tables.Message | None = None,
        step: tables.RunStep | None = None,
        text: str = "",
        usage: Usage | None = None,
        *,
        incomplete: str | None = None,
        step_status: StepStatus = StepStatus.COMPLETED,
        annotations: list[dict[str, Any]] | None = None,
    ) -> None:
        """End the run in `status`, closing its open message and step with `text`, in one transaction: a crash
        leaves both or neither, so a run taken over after a crash never writes a second reply."""
        finished = now()
        async with self.db.write() as session:
            if message is not None:
                message = await MessageRepository(session, run.project_id).get(message.id) or message
                message.content = [{"type": "text", "text": {"value": text, "annotations": annotations or []}}]
                if incomplete:
                    message.status, message.incomplete_at = MessageStatus.INCOMPLETE, finished
                    message.incomplete_details = {"reason": incomplete}
                else:
                    message.status, message.completed_at = MessageStatus.COMPLETED, finished
            if step is not None:
                step = await RunStepRepository(session, run.project_id).get(step.id) or step
                step.status = step_status
                setattr(step, STEP_ENDED_AT[step_status], finished)
                step.usage = wire.usage(usage) if usage else None
            self._add_usage(session, run, usage)
            row = await _transition(session, run, status, values)
        await self._charge(run, usage)
        if message is not None:
            self.bus.publish(run.id, f"thread.message.{message.status}", wire.message(message))
        if step is not None:
            self.bus.publish(run.id, f"thread.run.step.{step.status}", wire.run_step(step))
        if row is not None:
            self.bus.publish(run.id, f"thread.run.{status}", wire.run(row))

    # -- usage ------------------------------------------------------------------------------------------

    def _add_usage(self, session: Any, run: tables.Run, usage: Usage | None) -> None:
        """Record one model round's tokens in the transaction that closes its step."""
        if self.usage is not None and usage is not None and usage.total_tokens:
            session.add(usage_record(_owner(run), "thread.run", run.model, run.id, usage))

    async def _charge(self, run: tables.Run, usage: Usage | None) -> None:
        if self.usage is not None and usage is not None and usage.total_tokens:
            await self.usage.charge(_owner(run), "thread.run", run.model, usage)

    async def _record_usage(self, run: tables.Run, usage: Usage) -> None:
        """Record tokens spent outside a step (condensing a long text before the answer)."""
        if self.usage is not None:
            await self.usage.record(_owner(run), "thread.run", run.model, run.id, usage)

    async def _fresh_calls(self, run: tables.Run, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`calls` less those identical to a call of this run that has its output already, or to an earlier
        call of the same list: such a call would only hand the client the same question again."""
        async with self.db.read() as session:
            steps = await RunStepRepository(session, run.project_id).for_run(run.id)
        seen = {call_key(call) for step in steps for call in function_calls(step)}
        fresh = []
        for call in calls:
            if (key := call_key(call)) not in seen:
                seen.add(key)
                fresh.append(call)
        return fresh

    async def _require_action(
        self, run: tables.Run, calls: list[dict[str, Any]], usage: Usage, run_usage: dict[str, int]
    ) -> None:
        step = _new_step(run, now(), {"type": "tool_calls", "tool_calls": calls}, usage=wire.usage(usage))
        async with self.db.write() as session:
            await RunStepRepository(session, run.project_id).add(step)
            self._add_usage(session, run, usage)
        await self._charge(run, usage)
        # as OpenAI streams it: the step opens empty and one delta brings the calls (clients append deltas to it)
        opened = {**wire.run_step(step), "step_details": {"type": "tool_calls", "tool_calls": []}}
        self.bus.publish(run.id, "thread.run.step.created", opened)
        self.bus.publish(run.id, "thread.run.step.in_progress", opened)
        self.bus.publish(
            run.id,
            "thread.run.step.delta",
            {
                "id": step.id,
                "object": "thread.run.step.delta",
                "delta": {
                    "step_details": {
                        "type": "tool_calls",
                        "tool_calls": [{"index": index, **call} for index, call in enumerate(calls)],
                    }
                },
            },
        )
        required = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                    }
                    for c in calls
                ]
            },
        }
        await self._move(
            run,
            RunStatus.REQUIRES_ACTION,
            required_action=required,
            usage=run_usage,
            expires_at=now() + self.settings.tool_output_timeout_seconds,
        )

    async def _discard_unfinished(self, run: tables.Run) -> None:
        """Remove the in-progress message and step an interrupted attempt left behind; the run starts over."""
        async with self.db.write() as session:
            steps = RunStepRepository(session, run.project_id)
            messages = MessageRepository(session, run.project_id)
            for step in await steps.for_run(run.id):
                if step.status == StepStatus.IN_PROGRESS and step.type == "message_creation":
                    await messages.delete(step.step_details["message_creation"]["message_id"])
                    await steps.delete(step.id)

    async def _finish_cancel(
        self, run: tables.Run, message: tables.Message | None, step: tables.RunStep | None, text: str = ""
    ) -> None:
        await self._finish(
            run,
            RunStatus.CANCELLED,
            {"cancelled_at": now()},
            message,
            step,
            text,
            incomplete="run_cancelled",
            step_status=StepStatus.CANCELLED,
        )

    async def _fail(
        self,
        run: tables.Run,
        code: str,
        text_message: str,
        message: tables.Message | None = None,
        step: tables.RunStep | None = None,
        text: str = "",
    ) -> None:
        failure = {"failed_at": now(), "last_error": {"code": code, "message": text_message}}
        await self._finish(
            run, RunStatus.FAILED, failure, message, step, text, incomplete="run_failed", step_status=StepStatus.FAILED
        )
