"""Request bodies of /v1/threads."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from assistd.schemas.common import Metadata, RequestModel, ToolResources
from assistd.schemas.messages import MessageCreate

MAX_INITIAL_MESSAGES = 1000


class ThreadCreate(RequestModel):
    messages: Annotated[list[MessageCreate], Field(max_length=MAX_INITIAL_MESSAGES)] = []
    metadata: Metadata = None
    tool_resources: ToolResources | None = None


class ThreadUpdate(RequestModel):
    metadata: Metadata = None
    tool_resources: ToolResources | None = None
