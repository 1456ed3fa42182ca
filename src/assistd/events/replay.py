"""A run's events derived from the store, for subscribers that cannot get them from a bus.

A replay starts from what is stored when a subscriber subscribes and learns each event the subscriber is given
(`seen`); `changes` reads the run, its steps and its messages and returns the events that bring the subscriber
up to date, in the order the executor publishes them, with the same shapes. It has no token deltas: a message
that got none is sent whole in one delta before `thread.message.completed`, so `on_text_delta` still sees it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from assistd.events import announce
from assistd.events.announce import Named
from assistd.lifecycle import STREAM_ENDING_RUN, MessageStatus, RunStatus, StepStatus
from assistd.protocol import wire
from assistd.store import tables
from assistd.store.database import Database


def _run_state(shown: dict[str, Any]) -> tuple[str, Any]:
    """What tells two announcements of a run apart: a second requires_action has other tool calls."""
    return shown["status"], shown["required_action"]


class RunReplay:
    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._run: tuple[str, Any] | None = None
        self._steps: dict[str, str] = {}  # id → the status last announced
        self._messages: dict[str, str] = {}
        self._streamed: set[str] = set()  # messages whose text the subscriber got (or needs not get) in deltas

    @classmethod
    async def start(cls, db: Database, run_id: str) -> RunReplay:
        """A replay that takes what is stored now as already known."""
        replay = cls(db, run_id)
        run, steps, messages = await replay._load()
        if run is not None:
            replay._run = _run_state(wire.run(run))
        replay._steps = {step.id: step.status for step in steps}
        replay._messages = {message.id: message.status for message in messages}
        replay._streamed = set(replay._messages)
        return replay

    def seen(self, name: str, data: dict[str, Any]) -> None:
        """The subscriber was given this event."""
        delta = name.endswith(".delta")
        if name.startswith("thread.run.step."):
            if not delta:
                self._steps[data["id"]] = data["status"]
        elif name.startswith("thread.message."):
            if delta:
                self._streamed.add(data["id"])
            else:
                self._messages[data["id"]] = data["status"]
        elif name.startswith("thread.run."):
            self._run = _run_state(data)

    def announced(self, object_id: str) -> bool:
        """Whether the subscriber knows this step or message (a delta for one it does not know would break it)."""
        return object_id in self._steps or object_id in self._messages

    async def changes(self) -> list[Named]:
        """The events from what the subscriber knows to what is stored; a stopping run event comes last."""
        run, steps, messages = await self._load()
        if run is None:
            return []
        events: list[Named] = []
        stopping: list[Named] = []
        moved = announce.run_moved(run)
        if run.status != RunStatus.QUEUED and _run_state(moved[1]) != self._run:  # queued is in every prelude
            (stopping if run.status in STREAM_ENDING_RUN else events).append(moved)
        unlinked = {message.id: message for message in messages}
        for step in steps:
            linked = step.step_details.get("message_creation", {}).get("message_id")
            message = unlinked.pop(linked, None) if step.type == "message_creation" else None
            events += self._step(step, message)
        for message in unlinked.values():
            events += self._message(message)
        return events + stopping

    def _step(self, step: tables.RunStep, message: tables.Message | None) -> list[Named]:
        events: list[Named] = []
        if step.id not in self._steps:
            events += announce.step_opened(step)
        if message is not None:
            events += self._message(message)
        if step.status != StepStatus.IN_PROGRESS and self._steps.get(step.id) != step.status:
            events.append(announce.step_ended(step))
        return events

    def _message(self, message: tables.Message) -> list[Named]:
        events: list[Named] = []
        if message.id not in self._messages:
            events += announce.message_opened(message)
        if message.status != MessageStatus.IN_PROGRESS and self._messages.get(message.id) != message.status:
            if message.id not in self._streamed and message.content:
                events.append(("thread.message.delta", wire.message_content_delta(message)))
            events.append(announce.message_ended(message))
        return events

    async def _load(self) -> tuple[tables.Run | None, list[tables.RunStep], list[tables.Message]]:
        """The run, its steps and its messages (read across projects by id, as the worker does)."""
        async with self.db.read() as session:
            run = await session.get(tables.Run, self.run_id)
            if run is None:
                return None, [], []
            steps = await session.scalars(
                select(tables.RunStep)
                .where(tables.RunStep.project_id == run.project_id, tables.RunStep.run_id == run.id)
                .order_by(tables.RunStep.id)
            )
            messages = await session.scalars(
                select(tables.Message)
                .where(
                    tables.Message.project_id == run.project_id,
                    tables.Message.thread_id == run.thread_id,
                    tables.Message.run_id == run.id,
                )
                .order_by(tables.Message.id)
            )
            return run, list(steps.all()), list(messages.all())
