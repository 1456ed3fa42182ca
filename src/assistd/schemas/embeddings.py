"""Request body of POST /v1/embeddings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from assistd.schemas.chat import ModelName
from assistd.schemas.common import RequestModel

MAX_INPUTS = 2048


class EmbeddingCreate(RequestModel):
    model: ModelName
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
