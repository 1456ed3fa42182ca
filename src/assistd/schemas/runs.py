"""Request bodies of /v1/threads/{thread_id}/runs, submit_tool_outputs and /v1/threads/runs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from assistd.schemas.assistants import ModelName
from assistd.schemas.common import (
    Instructions,
    Metadata,
    ObjectId,
    ReasoningEffort,
    RequestModel,
    ResponseFormat,
    ResponseLanguage,
    Temperature,
    ToolResources,
    Tools,
    TopP,
)
from assistd.schemas.messages import MessageCreate
from assistd.schemas.threads import ThreadCreate


class NamedFunction(RequestModel):
    name: str


class FunctionChoice(RequestModel):
    type: Literal["function"]
    function: NamedFunction


class HostedToolChoice(RequestModel):
    type: Literal["file_search", "code_interpreter"]


ToolChoice = Literal["none", "auto", "required"] | FunctionChoice | HostedToolChoice


class TruncationStrategy(RequestModel):
    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int, Field(ge=1)] | None = None


class RunOptions(RequestModel):
    """What a run may override of its assistant, shared by create and create_and_run."""

    assistant_id: ObjectId
    model: ModelName | None = None
    instructions: Instructions | None = None
    tools: Tools | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    max_prompt_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    truncation_strategy: TruncationStrategy | None = None
    metadata: Metadata = None
    reasoning_effort: ReasoningEffort | None = None
    response_language: ResponseLanguage = None
    stream: bool | None = None


class RunCreate(RunOptions):
    additional_instructions: Instructions | None = None
    additional_messages: Annotated[list[MessageCreate], Field(max_length=32)] | None = None


class ThreadAndRunCreate(RunOptions):
    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class RunUpdate(RequestModel):
    metadata: Metadata = None


class ToolOutput(RequestModel):
    tool_call_id: Annotated[str, Field(min_length=1, max_length=64)]
    output: Annotated[str, Field(max_length=512_000)] = ""


class SubmitToolOutputs(RequestModel):
    tool_outputs: Annotated[list[ToolOutput], Field(min_length=1, max_length=128)]
    stream: bool | None = None
