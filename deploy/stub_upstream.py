"""A minimal OpenAI-compatible chat model for load and fault tests: `POST /v1/chat/completions` streams
`tokens` words, `delay` seconds apart, as vLLM would (SSE chunks, then a usage chunk and `[DONE]`); `GET
/v1/models` lists it. No model, no GPU: it measures what assistd adds, not what a model costs.

    python deploy/stub_upstream.py --port 9100 --tokens 32 --delay 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

MODEL = "stub-model"


def create_app(tokens: int, delay: float) -> Starlette:
    async def models(_request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "stub"}]})

    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        body = await request.json()
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        words = [f"word{i} " for i in range(tokens)]
        usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}

        def chunk(delta: dict, finish: str | None = None, **extra) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL}
            return f"data: {json.dumps({**payload, 'choices': [choice], **extra})}\n\n"

        if not body.get("stream"):
            await asyncio.sleep(delay * tokens)
            message = {"role": "assistant", "content": "".join(words)}
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": MODEL,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for word in words:
                await asyncio.sleep(delay)
                yield chunk({"content": word})
            yield chunk({}, "stop")
            yield f"data: {json.dumps({'id': completion_id, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])


def models_file(base_url: str, *, name: str = "stub") -> str:
    """A models file (TOML) naming this upstream as chat model `name`, plus the bundled embedding model."""
    return (
        f'[models."{name}"]\nengine = "openai_compat"\nbase_url = "{base_url}"\nupstream_model = "{MODEL}"\n'
        'timeout = 60\n\n[models."all-minilm-l6-v2"]\nengine = "onnx_embeddings"\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--tokens", type=int, default=32, help="words per answer")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between words")
    args = parser.parse_args()
    uvicorn.run(create_app(args.tokens, args.delay), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
