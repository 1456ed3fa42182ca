"""Server-sent events: the one encoder for every stream we send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from assistd.jsontext import dumps
from assistd.protocol.events import DONE

__all__ = ["DONE", "encode", "response"]


def encode(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One SSE message; `data` is a JSON object or a literal such as [DONE]."""
    payload = data.encode() if isinstance(data, str) else dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: ".encode() + payload + b"\n\n"


def response(messages: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        messages,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
