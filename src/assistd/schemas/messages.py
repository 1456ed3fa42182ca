"""Request bodies of /v1/threads/{thread_id}/messages (also the initial messages of a thread)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from assistd.schemas.common import Metadata, ObjectId, RequestModel

MAX_TEXT = 256_000
MAX_ATTACHMENTS = 20
MAX_CONTENT_PARTS = 100

Detail = Literal["auto", "low", "high"]


class TextPart(RequestModel):
    type: Literal["text"]
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class ImageFile(RequestModel):
    file_id: ObjectId
    detail: Detail | None = None


class ImageFilePart(RequestModel):
    type: Literal["image_file"]
    image_file: ImageFile


class ImageURL(RequestModel):
    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
    detail: Detail | None = None


class ImageURLPart(RequestModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImageFilePart | ImageURLPart, Field(discriminator="type")]


class CodeInterpreterAttachmentTool(RequestModel):
    type: Literal["code_interpreter"]


class FileSearchAttachmentTool(RequestModel):
    type: Literal["file_search"]


AttachmentTool = Annotated[CodeInterpreterAttachmentTool | FileSearchAttachmentTool, Field(discriminator="type")]


class Attachment(RequestModel):
    file_id: ObjectId
    tools: Annotated[list[AttachmentTool], Field(max_length=2)] = []


class MessageCreate(RequestModel):
    role: Literal["user", "assistant"]
    content: (
        Annotated[str, StringConstraints(max_length=MAX_TEXT)]
        | Annotated[list[ContentPart], Field(min_length=1, max_length=MAX_CONTENT_PARTS)]
    )
    attachments: Annotated[list[Attachment], Field(max_length=MAX_ATTACHMENTS)] | None = None
    metadata: Metadata = None


class MessageUpdate(RequestModel):
    metadata: Metadata = None
