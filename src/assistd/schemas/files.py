"""Request models for /v1/files (the upload itself is multipart form data, read in the route)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from assistd.schemas.common import RequestModel

FilePurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
PURPOSES: tuple[str, ...] = get_args(FilePurpose)


class FileExpiresAfter(RequestModel):
    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=3600, le=2_592_000)]
