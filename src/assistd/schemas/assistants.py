"""Request bodies of /v1/assistants."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from assistd.schemas.common import (
    AppName,
    Description,
    Instructions,
    Metadata,
    Name,
    ReasoningEffort,
    RequestModel,
    ResponseFormat,
    ResponseLanguage,
    Temperature,
    ToolResources,
    Tools,
    TopP,
)

ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class AssistantCreate(RequestModel):
    model: ModelName
    name: Name | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    tools: Tools = []
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None
    response_language: ResponseLanguage = None
    app: AppName = None


class AssistantUpdate(RequestModel):
    """Only the fields present in the body change; an explicit null clears a nullable field."""

    model: ModelName | None = None
    name: Name | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    tools: Tools | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None
    response_language: ResponseLanguage = None
    app: AppName = None
