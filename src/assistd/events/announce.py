"""Which `thread.*` events announce a run, a step or a message in a given state, and with what data.

The executor announces what it writes with these, and a replay from the store (events/replay.py) derives the
same events from stored rows with them, so a stream reads the same whether it came from a bus or the store.
"""

from __future__ import annotations

from typing import Any

from assistd.lifecycle import STEP_ENDED_AT, MessageStatus, StepStatus
from assistd.protocol import wire
from assistd.store import tables

Named = tuple[str, dict[str, Any]]

_UNFINISHED_STEP: dict[str, Any] = {"status": StepStatus.IN_PROGRESS, **dict.fromkeys(STEP_ENDED_AT.values())}
_UNFINISHED_MESSAGE: dict[str, Any] = {
    "status": MessageStatus.IN_PROGRESS,
    "content": [],
    "completed_at": None,
    "incomplete_at": None,
    "incomplete_details": None,
}


def run_moved(run: tables.Run) -> Named:
    """The run in its current status: `thread.run.<status>`."""
    return f"thread.run.{run.status}", wire.run(run)


def step_opened(step: tables.RunStep, details: dict[str, Any] | None = None) -> list[Named]:
    """A step as it starts (created, then in_progress), with `details` in place of its own when given."""
    shown = {**wire.run_step(step), **_UNFINISHED_STEP}
    if details is not None:
        shown["step_details"] = details
    return [("thread.run.step.created", shown), ("thread.run.step.in_progress", shown)]


def step_ended(step: tables.RunStep) -> Named:
    """A step in the status it ended in: `thread.run.step.<status>`."""
    return f"thread.run.step.{step.status}", wire.run_step(step)


def message_opened(message: tables.Message) -> list[Named]:
    """A message as it starts (created, then in_progress), still empty."""
    shown = {**wire.message(message), **_UNFINISHED_MESSAGE}
    return [("thread.message.created", shown), ("thread.message.in_progress", shown)]


def message_ended(message: tables.Message) -> Named:
    """A message in the status it ended in: `thread.message.<status>`."""
    return f"thread.message.{message.status}", wire.message(message)
