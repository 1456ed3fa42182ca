"""Recording a run's progress: its status, its steps, its reply message and its usage, written with guarded
updates and announced on the event bus as they are written (events/announce.py shapes the events, the same ones
a replay from the store derives).

A reply's message and step are written when its first words come and closed together with the run's status in
one transaction: a crash leaves both or neither, so a run taken over after a crash never writes a second reply.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistd import metrics
from assistd.clock import now
from assistd.engines.base import Usage
from assistd.events import announce
from assistd.events.bus import EventBus
from assistd.ids import new_id
from assistd.lifecycle import STEP_ENDED_AT, TERMINAL_RUN, MessageStatus, RunStatus, StepStatus, sources_of
from assistd.protocol import wire
from assistd.services.principal import Principal
from assistd.services.usage import UsageService, usage_record
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import MessageRepository, RunRepository, RunStepRepository


@dataclass
class Reply:
    """The assistant message a run is writing, its message_creation step, and the text so far."""

    message: tables.Message
    step: tables.RunStep
    text: str = ""


@dataclass(frozen=True)
class Ending:
    """How a run ends: its status and the values set with it; how its reply and reply step end."""

    status: RunStatus
    values: dict[str, Any]
    incomplete: str | None = None  # the reply's incomplete reason, None when it completes
    step_status: StepStatus = StepStatus.COMPLETED


def cancelled() -> Ending:
    return Ending(RunStatus.CANCELLED, {"cancelled_at": now()}, "run_cancelled", StepStatus.CANCELLED)


def failed(code: str, message: str) -> Ending:
    failure = {"failed_at": now(), "last_error": {"code": code, "message": message}}
    return Ending(RunStatus.FAILED, failure, "run_failed", StepStatus.FAILED)


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


def _owner(run: tables.Run) -> Principal:
    """Whose run it is: its project, and the key that created it (for usage and token limits)."""
    return Principal(project_id=run.project_id, key_id=run.api_key_id or "")


def added_usage(run: tables.Run, usage: Usage) -> dict[str, int]:
    """The run's usage with one more model round's tokens."""
    return wire.usage(wire.usage_counts(run.usage) + usage)


class RunRecorder:
    """Writes and announces one run's progress (the executor's only way to change a run)."""

    def __init__(
        self, db: Database, bus: EventBus, usage: UsageService | None, tool_output_timeout_seconds: int
    ) -> None:
        self.db = db
        self.bus = bus
        self.usage = usage
        self.tool_output_timeout_seconds = tool_output_timeout_seconds

    def announce_moved(self, run: tables.Run) -> None:
        """Announce the status a run was moved to elsewhere (a claim starts a queued run)."""
        self._announce(run, announce.run_moved(run))

    def _announce(self, run: tables.Run, *events: announce.Named) -> None:
        for name, data in events:
            self.bus.publish(run.id, name, data)

    async def _transition(self, session: Any, run: tables.Run, status: RunStatus, values: dict[str, Any]) -> Any:
        """The guarded move of `run` to `status` inside `session`: the updated row, or None if it had moved on."""
        moved = await RunRepository(session, run.project_id).transition(
            run.id, sources_of(status), status=status, **values
        )
        if moved is not None and status in TERMINAL_RUN:
            metrics.observe_run_end(status, run.created_at, time.time())
        return moved

    async def move(self, run: tables.Run, status: RunStatus, **values: Any) -> tables.Run | None:
        """Guarded transition to `status`, announced. None if the run had moved on."""
        async with self.db.write() as session:
            row = await self._transition(session, run, status, values)
        if row is not None:
            self._announce(run, announce.run_moved(row))
        return row

    async def expire(self, run: tables.Run, moment: int) -> None:
        """End a run whose tool outputs did not come in time, with its unfinished steps, announced."""
        async with self.db.write() as session:
            sources = {RunStatus.REQUIRES_ACTION}
            expired = await RunRepository(session, run.project_id).end(
                run.id, RunStatus.EXPIRED, moment, sources=sources, required_action=None
            )
        if expired is None:
            return
        metrics.observe_run_end(RunStatus.EXPIRED, run.created_at, time.time())
        self._announce(run, announce.run_moved(expired))

    async def status(self, run: tables.Run) -> str:
        """The run's stored status (cancelled when it is gone)."""
        async with self.db.read() as session:
            row = await RunRepository(session, run.project_id).get(run.id)
        return row.status if row else RunStatus.CANCELLED

    async def steps(self, run: tables.Run) -> list[tables.RunStep]:
        async with self.db.read() as session:
            return await RunStepRepository(session, run.project_id).for_run(run.id)

    async def discard_unfinished(self, run: tables.Run) -> None:
        """Remove the in-progress message and step an interrupted attempt left behind; the run starts over."""
        async with self.db.write() as session:
            steps = RunStepRepository(session, run.project_id)
            messages = MessageRepository(session, run.project_id)
            for step in await steps.for_run(run.id):
                if step.status == StepStatus.IN_PROGRESS and step.type == "message_creation":
                    await messages.delete(step.step_details["message_creation"]["message_id"])
                    await steps.delete(step.id)

    # -- steps and the reply ----------------------------------------------------------------------------

    async def add_tool_step(self, run: tables.Run, calls: list[dict[str, Any]]) -> None:
        """A completed tool_calls step (a hosted tool's work), announced as it would have streamed."""
        created = now()
        details = {"type": "tool_calls", "tool_calls": calls}
        step = _new_step(run, created, details, StepStatus.COMPLETED, completed_at=created)
        async with self.db.write() as session:
            await RunStepRepository(session, run.project_id).add(step)
        self._announce(run, *announce.step_opened(step), announce.step_ended(step))

    async def open_reply(self, run: tables.Run) -> Reply:
        """The reply's message and its message_creation step, written and announced."""
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
            await MessageRepository(session, run.project_id).insert(message)
            await RunStepRepository(session, run.project_id).insert(step)
        self._announce(run, *announce.step_opened(step), *announce.message_opened(message))
        return Reply(message, step)

    def add_text(self, run: tables.Run, reply: Reply, text: str, annotations: Sequence[dict[str, Any]] = ()) -> None:
        """Text (and annotations pointing into it) added to the reply, announced as a message delta."""
        reply.text += text
        self._announce(run, ("thread.message.delta", wire.message_text_delta(reply.message.id, text, annotations)))

    async def require_action(self, run: tables.Run, calls: list[dict[str, Any]], usage: Usage) -> None:
        """A tool_calls step of `calls` (made in a model round of `usage`) for the client to answer; the run
        requires action until it does."""
        step = _new_step(run, now(), {"type": "tool_calls", "tool_calls": calls}, usage=wire.usage(usage))
        async with self.db.write() as session:
            await RunStepRepository(session, run.project_id).add(step)
            self._add_usage(session, run, usage)
        await self._charge(run, usage)
        # as OpenAI streams it: the step opens empty and one delta brings the calls (clients append deltas to it)
        self._announce(
            run,
            *announce.step_opened(step, {"type": "tool_calls", "tool_calls": []}),
            ("thread.run.step.delta", wire.step_tool_calls_delta(step.id, calls)),
        )
        await self.move(
            run,
            RunStatus.REQUIRES_ACTION,
            required_action=wire.submit_tool_outputs(calls),
            usage=added_usage(run, usage),
            expires_at=now() + self.tool_output_timeout_seconds,
        )

    async def finish(
        self,
        run: tables.Run,
        ending: Ending,
        reply: Reply | None = None,
        usage: Usage | None = None,
        annotations: list[dict[str, Any]] | None = None,
    ) -> None:
        """End the run as `ending` says, closing its reply and reply step in the same transaction."""
        finished = now()
        message, step = (reply.message, reply.step) if reply else (None, None)
        async with self.db.write() as session:
            if reply is not None:
                content = [{"type": "text", "text": {"value": reply.text, "annotations": annotations or []}}]
                closed: dict[str, Any] = {"content": content}
                if ending.incomplete:
                    closed |= {"status": MessageStatus.INCOMPLETE, "incomplete_at": finished}
                    closed["incomplete_details"] = {"reason": ending.incomplete}
                else:
                    closed |= {"status": MessageStatus.COMPLETED, "completed_at": finished}
                ended = {"status": ending.step_status, STEP_ENDED_AT[ending.step_status]: finished}
                ended["usage"] = wire.usage(usage) if usage else None
                # written without reading them first; the reply's own copies, changed alike, are announced
                await MessageRepository(session, run.project_id).set(reply.message.id, **closed)
                await RunStepRepository(session, run.project_id).set(reply.step.id, **ended)
                for copy, values in ((reply.message, closed), (reply.step, ended)):
                    for name, value in values.items():
                        setattr(copy, name, value)
            self._add_usage(session, run, usage)
            row = await self._transition(session, run, ending.status, ending.values)
        await self._charge(run, usage)
        if message is not None and step is not None:
            self._announce(run, announce.message_ended(message), announce.step_ended(step))
        if row is not None:
            self._announce(run, announce.run_moved(row))

    # -- usage ------------------------------------------------------------------------------------------

    def _add_usage(self, session: Any, run: tables.Run, usage: Usage | None) -> None:
        """Record one model round's tokens in the transaction that closes its step."""
        if self.usage is not None and usage is not None and usage.total_tokens:
            session.add(usage_record(_owner(run), "thread.run", run.model, run.id, usage))

    async def _charge(self, run: tables.Run, usage: Usage | None) -> None:
        if self.usage is not None and usage is not None and usage.total_tokens:
            await self.usage.charge(_owner(run), "thread.run", run.model, usage)

    async def record_usage(self, run: tables.Run, usage: Usage) -> None:
        """Record tokens spent outside a step (condensing a long text before the answer)."""
        if self.usage is not None:
            await self.usage.record(_owner(run), "thread.run", run.model, run.id, usage)
