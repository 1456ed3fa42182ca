"""A minimal OpenAI-compatible chat model for load, fault and protocol tests: `POST /v1/chat/completions`
streams its answer as vLLM would (SSE chunks, then a usage chunk and `[DONE]`); `GET /v1/models` lists it.
No model, no GPU: it measures what assistd adds, not what a model costs, and answers the same way every time.

    python deploy/stub_upstream.py --port 9100 --tokens 32 --delay 0.01

By default the answer is `tokens` words (`word0 word1 ...`), `delay` seconds apart. A test scripts other answers
in the last user message of the conversation, one directive a line (other lines are ignored):

    say: TEXT                         a turn that answers TEXT
    call: NAME {JSON} [NAME {JSON}]   a turn that calls these functions with these arguments (several: parallel)
    delay: SECONDS                    seconds between chunks, instead of `delay`
    fail: MESSAGE                     after the text, an error event carrying MESSAGE instead of the finish

Turns play in order: a request's turn is the number of assistant messages with tool calls since that user
message (the rounds of calls so far). Without tools offered, or with `tool_choice` "none", a `call` turn is
answered in text; a forced `tool_choice` ("required" or a named function) with no `call` turn calls the named
(or first) function with `{}`. A text answer without a `say` turn is, after tool outputs, `Tool outputs: ` and
the outputs joined by `; `, otherwise the default words. Text streams a word (with the space after it) a chunk,
and stops after `max_tokens` chunks (finish reason `length`); a call streams two chunks, its name and then its
arguments. Usage: a prompt token per word of the messages' text, a completion token per chunk streamed.
The bodies of the last 10,000 requests are kept, in order, in `app.state.requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

MODEL = "stub-model"
KEPT_REQUESTS = 10_000
DIRECTIVE = re.compile(r"^(say|call|delay|fail):\s*(.*?)\s*$", re.MULTILINE)


@dataclass
class Reply:
    """What the stub answers one request: text pieces or function calls, how fast, and how it ends."""

    pieces: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments as JSON)
    delay: float = 0.0
    failure: str | None = None
    finish: str = "stop"


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _parse_calls(script: str) -> list[tuple[str, str]]:
    """`NAME {JSON} NAME {JSON} ...` as (name, arguments) pairs."""
    decoder, calls, rest = json.JSONDecoder(), [], script.strip()
    while rest:
        name, _, rest = rest.partition(" ")
        arguments, end = decoder.raw_decode(rest.lstrip())
        calls.append((name, json.dumps(arguments)))
        rest = rest.lstrip()[end:].strip()
    return calls


def _forced_name(body: dict[str, Any]) -> str | None:
    """The function a forced `tool_choice` asks for (the first offered for "required"); None when not forced."""
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    if isinstance(choice, dict):
        return choice["function"]["name"]
    return tools[0]["function"]["name"] if choice == "required" and tools else None


def plan(body: dict[str, Any], tokens: int, delay: float) -> Reply:
    """The reply to a chat completion request `body`, following the directives of its last user message."""
    messages = body.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    directives = DIRECTIVE.findall(_text(messages[last_user])) if last_user >= 0 else []
    turns = [(key, value) for key, value in directives if key in ("say", "call")]
    settings = {key: value for key, value in directives if key in ("delay", "fail")}
    rounds = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "assistant" and m.get("tool_calls"))
    turn = turns[rounds] if rounds < len(turns) else ("", "")
    reply = Reply(delay=float(settings.get("delay", delay)), failure=settings.get("fail"))
    if body.get("tools") and body.get("tool_choice") != "none":
        if turn[0] == "call":
            reply.calls = _parse_calls(turn[1])
        elif forced := _forced_name(body):
            reply.calls = [(forced, "{}")]
        if reply.calls:
            reply.finish = "tool_calls"
            return reply
    outputs = [_text(m) for m in messages[last_user + 1 :] if m.get("role") == "tool"]
    if turn[0] == "say":
        text = turn[1]
    elif messages and messages[-1].get("role") == "tool":
        text = "Tool outputs: " + "; ".join(outputs)
    else:
        text = "".join(f"word{i} " for i in range(tokens))
    reply.pieces = re.findall(r"\S+\s*", text)
    limit = body.get("max_tokens")
    if limit is not None and len(reply.pieces) > limit:
        reply.pieces, reply.finish = reply.pieces[:limit], "length"
    return reply


def create_app(tokens: int, delay: float) -> Starlette:
    """The stub's ASGI app: `tokens` words `delay` seconds apart unless the request scripts otherwise."""
    requests: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)

    async def models(_request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "stub"}]})

    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        body = await request.json()
        requests.append(body)
        reply = plan(body, tokens, delay)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        calls = [(f"call_{uuid.uuid4().hex[:24]}", name, arguments) for name, arguments in reply.calls]
        prompt_tokens = sum(len(_text(message).split()) for message in body.get("messages") or [])
        completion_tokens = len(reply.pieces) + 2 * len(calls)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

        def chunk(delta: dict, finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL}
            return f"data: {json.dumps({**payload, 'choices': [choice]})}\n\n"

        if not body.get("stream"):
            await asyncio.sleep(reply.delay * completion_tokens)
            if reply.failure is not None:
                return JSONResponse({"error": {"message": reply.failure, "type": "server_error"}}, status_code=500)
            message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.pieces) or None}
            if calls:
                message["tool_calls"] = [
                    {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}
                    for id_, name, arguments in calls
                ]
            choice = {"index": 0, "message": message, "finish_reason": reply.finish}
            answer = {"id": completion_id, "object": "chat.completion", "created": created, "model": MODEL}
            return JSONResponse({**answer, "choices": [choice], "usage": usage})

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for piece in reply.pieces:
                await asyncio.sleep(reply.delay)
                yield chunk({"content": piece})
            for index, (id_, name, arguments) in enumerate(calls):
                await asyncio.sleep(reply.delay)
                head = {"index": index, "id": id_, "type": "function", "function": {"name": name, "arguments": ""}}
                yield chunk({"tool_calls": [head]})
                await asyncio.sleep(reply.delay)
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
            if reply.failure is not None:
                yield f"data: {json.dumps({'error': {'message': reply.failure, 'type': 'server_error'}})}\n\n"
                return
            yield chunk({}, reply.finish)
            yield f"data: {json.dumps({'id': completion_id, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.requests = requests
    return app


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve `app` on a free loopback port from a thread of this process; yields its base URL (`.../v1`)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the stub upstream did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
