"""The server-sent events of a run's stream: each event's name and the model of its `data`.

A stream that creates a thread starts with thread.created; the run, its steps and its messages announce each
status they reach; deltas carry text and tool calls as they are generated; `done` (data `[DONE]`) ends it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from assistd.lifecycle import MessageStatus, RunStatus, StepStatus
from assistd.protocol.assistants import Message, MessageDelta, Run, RunStep, RunStepDelta, Thread
from assistd.protocol.common import inline_schema

DONE = "[DONE]"

RUN_EVENTS: dict[str, type[BaseModel]] = {
    "thread.created": Thread,
    **{f"thread.run.{status}": Run for status in RunStatus},
    "thread.run.step.created": RunStep,
    **{f"thread.run.step.{status}": RunStep for status in StepStatus},
    "thread.run.step.delta": RunStepDelta,
    "thread.message.created": Message,
    **{f"thread.message.{status}": Message for status in MessageStatus},
    "thread.message.delta": MessageDelta,
}
"""Event name → the model of its data, for every event a run's stream sends but the last (`done`)."""


def run_stream_schema() -> dict[str, Any]:
    """The schema of one event of a run's stream (`text/event-stream`), as `{"event": name, "data": ...}`."""
    names: dict[type[BaseModel], list[str]] = {}
    for name, model in RUN_EVENTS.items():
        names.setdefault(model, []).append(name)
    return {
        "description": "Each server-sent event: its name (`event:`) and its JSON (`data:`).",
        "oneOf": [
            *(_event(names_of_model, inline_schema(model)) for model, names_of_model in names.items()),
            _event(["done"], {"type": "string", "const": DONE}),
        ],
    }


def _event(names: list[str], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {"event": {"type": "string", "enum": names}, "data": data},
    }
