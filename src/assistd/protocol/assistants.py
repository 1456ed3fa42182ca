"""The Assistants API's objects: assistants, threads, messages, runs and run steps, and the deltas of a stream.

Tools, content parts, step details and the like are stored as the client (or the executor) gave them and sent
back verbatim, so they are typed here as JSON objects; the fields around them are typed exactly.
"""

from __future__ import annotations

from typing import Any, Literal

from assistd.lifecycle import MessageStatus, RunStatus, StepStatus
from assistd.protocol.common import Metadata, RunUsage, WireModel, extension

JSONObject = dict[str, Any]


class Assistant(WireModel):
    id: str
    object: Literal["assistant"]
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[JSONObject]
    tool_resources: JSONObject
    metadata: Metadata
    temperature: float | None
    top_p: float | None
    response_format: Literal["auto"] | JSONObject | None
    reasoning_effort: str | None = extension("The reasoning effort asked of the model (o-series requests).")
    response_language: str | None = extension("The language its runs answer in (a BCP 47 tag), or null.")
    app: str | None = extension("The app preset it was installed as (summarize, translate...), or null.")


class Thread(WireModel):
    id: str
    object: Literal["thread"]
    created_at: int
    metadata: Metadata
    tool_resources: JSONObject


class Message(WireModel):
    id: str
    object: Literal["thread.message"]
    created_at: int
    thread_id: str
    status: MessageStatus
    incomplete_details: JSONObject | None
    completed_at: int | None
    incomplete_at: int | None
    role: Literal["user", "assistant"]
    content: list[JSONObject]
    assistant_id: str | None
    run_id: str | None
    attachments: list[JSONObject]
    metadata: Metadata


class Run(WireModel):
    id: str
    object: Literal["thread.run"]
    created_at: int
    assistant_id: str
    thread_id: str
    status: RunStatus
    started_at: int | None
    expires_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    required_action: JSONObject | None
    last_error: JSONObject | None
    model: str
    instructions: str
    tools: list[JSONObject]
    tool_resources: JSONObject = extension("The files its tools use: its assistant's, or those it was created with.")
    metadata: Metadata
    temperature: float | None
    top_p: float | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    truncation_strategy: JSONObject
    incomplete_details: JSONObject | None
    usage: RunUsage | None
    response_format: Literal["auto"] | JSONObject
    tool_choice: Literal["none", "auto", "required"] | JSONObject
    parallel_tool_calls: bool
    response_language: str | None = extension("The language the run answers in (a BCP 47 tag), or null.")
    app: str | None = extension("The app preset of its assistant when the run was created, or null.")


class RunStep(WireModel):
    id: str
    object: Literal["thread.run.step"]
    created_at: int
    run_id: str
    assistant_id: str
    thread_id: str
    type: Literal["message_creation", "tool_calls"]
    status: StepStatus
    cancelled_at: int | None
    completed_at: int | None
    expired_at: int | None
    failed_at: int | None
    last_error: JSONObject | None
    step_details: JSONObject
    usage: RunUsage | None
    metadata: Metadata


class MessageDeltaBody(WireModel):
    content: list[JSONObject]


class MessageDelta(WireModel):
    """A thread.message.delta: content to add to the message (clients append it by index)."""

    id: str
    object: Literal["thread.message.delta"]
    delta: MessageDeltaBody


class RunStepDeltaBody(WireModel):
    step_details: JSONObject


class RunStepDelta(WireModel):
    """A thread.run.step.delta: tool calls to add to a tool_calls step."""

    id: str
    object: Literal["thread.run.step.delta"]
    delta: RunStepDeltaBody
