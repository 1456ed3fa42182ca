"""The OpenAI-compatible upstream engines: request bodies, stream mapping, error mapping, timeouts, cancellation.

Most tests put an httpx.MockTransport in place of the upstream; one runs a real streaming server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from assistd.engines.base import Chunk, GenerationRequest, ToolCallDelta, Usage
from assistd.engines.openai_compat import OpenAICompatEmbeddingEngine, OpenAICompatTextEngine
from assistd.errors import InvalidRequest, UpstreamError, UpstreamTimeout

KEY = "sk-upstream-secret-0123456789"
BASE_URL = "http://upstream.test/v1"
HELLO = GenerationRequest(messages=[{"role": "user", "content": "hi"}])
Handler = Callable[[httpx.Request], httpx.Response]


def sse(*payloads: Any, done: bool = True) -> bytes:
    """An SSE body with one `data:` event per payload (dicts are JSON-encoded), ending with [DONE]."""
    events = [p if isinstance(p, str) else json.dumps(p) for p in payloads]
    if done:
        events.append("[DONE]")
    return "".join(f"data: {event}\n\n" for event in events).encode()


def delta(content: str | None = None, tool_calls: list[dict] | None = None, finish: str | None = None) -> dict:
    """A chat.completion.chunk with one choice."""
    choice_delta: dict[str, Any] = {}
    if content is not None:
        choice_delta["content"] = content
    if tool_calls is not None:
        choice_delta["tool_calls"] = tool_calls
    choice = {"index": 0, "delta": choice_delta, "finish_reason": finish}
    return {"object": "chat.completion.chunk", "choices": [choice]}


def usage_chunk(prompt_tokens: int, completion_tokens: int) -> dict:
    total = prompt_tokens + completion_tokens
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}
    return {"object": "chat.completion.chunk", "choices": [], "usage": usage}


def sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


class Upstream:
    """A MockTransport that records the requests it gets and answers each with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._handler(request)

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)

    def text_engine(self, **kwargs: Any) -> OpenAICompatTextEngine:
        return OpenAICompatTextEngine("local-m", BASE_URL, KEY, "upstream-m", transport=self.transport, **kwargs)


async def collect(engine: OpenAICompatTextEngine, request: GenerationRequest) -> list[Chunk]:
    try:
        return [chunk async for chunk in engine.stream(request)]
    finally:
        await engine.close()


def run_stream(upstream: Upstream, request: GenerationRequest = HELLO) -> list[Chunk]:
    return asyncio.run(collect(upstream.text_engine(), request))


def test_chat_stream_concatenates_text_and_ends_with_one_final_chunk() -> None:
    body = sse(delta("Hel"), delta("lo"), delta(finish="stop"), usage_chunk(5, 2))
    upstream = Upstream(lambda _: sse_response(body))
    chunks = run_stream(upstream)

    assert "".join(chunk.text for chunk in chunks) == "Hello"
    assert [chunk.finish_reason for chunk in chunks] == [None, None, "stop"]
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(prompt_tokens=5, completion_tokens=2))
    request = upstream.requests[0]
    assert request.url == "http://upstream.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert upstream.body == {
        "model": "upstream-m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_sse_comments_event_lines_and_compact_data_lines_are_handled() -> None:
    body = b": keep-alive\n\nevent: message\ndata:" + json.dumps(delta("ok", finish="stop")).encode() + b"\n\n"
    chunks = run_stream(Upstream(lambda _: sse_response(body + b"data: [DONE]\n\n")))
    assert chunks == [Chunk(text="ok"), Chunk(finish_reason="stop")]


def test_temperature_zero_is_sent_and_fields_left_none_are_not() -> None:
    upstream = Upstream(lambda _: sse_response(sse(delta(finish="stop"))))
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], temperature=0, tool_choice="auto")
    run_stream(upstream, request)
    assert upstream.body["temperature"] == 0
    # tool_choice and parallel_tool_calls only go with tools
    assert set(upstream.body) == {"model", "stream", "stream_options", "messages", "temperature"}


def test_every_set_field_is_forwarded() -> None:
    upstream = Upstream(lambda _: sse_response(sse(delta(finish="stop"))))
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    request = GenerationRequest(
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=7,
        temperature=0.5,
        top_p=0.9,
        stop=("\n", "END"),
        seed=42,
        presence_penalty=0.1,
        frequency_penalty=-0.2,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "f"}},
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        user="u-1",
        prompt_cache_key="thread-7",
    )
    run_stream(upstream, request)
    assert upstream.body == {
        "model": "upstream-m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["\n", "END"],
        "seed": 42,
        "presence_penalty": 0.1,
        "frequency_penalty": -0.2,
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "user": "u-1",
        "prompt_cache_key": "thread-7",
    }


def test_tool_call_deltas_keep_their_index_across_chunks() -> None:
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    body = sse(
        delta(tool_calls=[first]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
        delta(tool_calls=[second]),
        delta(finish="tool_calls"),
        usage_chunk(20, 9),
    )
    chunks = run_stream(Upstream(lambda _: sse_response(body)))

    deltas = [call for chunk in chunks for call in chunk.tool_calls]
    assert deltas == [
        ToolCallDelta(index=0, id="call_a", name="get_weather", arguments=""),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
        ToolCallDelta(index=1, id="call_b", name="get_time", arguments="{}"),
    ]
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"city": "Paris"}'
    assert chunks[-1] == Chunk(finish_reason="tool_calls", usage=Usage(20, 9))


def test_usage_sent_with_the_finish_reason() -> None:
    last = delta("!", finish="length") | {"usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    chunks = run_stream(Upstream(lambda _: sse_response(sse(last))))
    assert chunks == [Chunk(text="!"), Chunk(finish_reason="length", usage=Usage(3, 1))]


def test_the_upstream_s_cached_prompt_tokens_come_back_in_the_usage() -> None:
    counts = {"prompt_tokens": 300, "completion_tokens": 2, "total_tokens": 302}
    cached = delta(finish="stop") | {"usage": {**counts, "prompt_tokens_details": {"cached_tokens": 256}}}
    implausible = delta(finish="stop") | {"usage": {**counts, "prompt_tokens_details": {"cached_tokens": 999}}}
    assert run_stream(Upstream(lambda _: sse_response(sse(cached))))[-1].usage == Usage(300, 2, cached_tokens=256)
    assert run_stream(Upstream(lambda _: sse_response(sse(implausible))))[-1].usage == Usage(300, 2)


def test_no_usage_from_the_upstream_gives_none() -> None:
    chunks = run_stream(Upstream(lambda _: sse_response(sse(delta("a"), delta(finish="stop")))))
    assert chunks == [Chunk(text="a"), Chunk(finish_reason="stop", usage=None)]


def test_plain_prompt_uses_the_legacy_completions_endpoint() -> None:
    def text(value: str, finish: str | None = None) -> dict:
        return {"object": "text_completion", "choices": [{"index": 0, "text": value, "finish_reason": finish}]}

    body = sse(text("Once"), text(" upon"), text("", "length"), usage_chunk(4, 2))
    upstream = Upstream(lambda _: sse_response(body))
    chunks = run_stream(upstream, GenerationRequest(prompt="Tell me", max_tokens=2, stop=("\n",)))

    assert upstream.requests[0].url == "http://upstream.test/v1/completions"
    assert upstream.body == {
        "model": "upstream-m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "prompt": "Tell me",
        "max_tokens": 2,
        "stop": ["\n"],
    }
    assert "".join(chunk.text for chunk in chunks) == "Once upon"
    assert chunks[-1] == Chunk(finish_reason="length", usage=Usage(4, 2))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (
            400,
            {"error": {"message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens"}},
        ),
        (404, {"error": {"message": "The model `upstream-m` does not exist.", "code": "model_not_found"}}),
        # vLLM's older error shape
        (400, {"object": "error", "message": "max_tokens is too large", "param": "max_tokens", "code": 400}),
    ],
)
def test_caller_faults_of_the_upstream_become_invalid_request(status: int, error: dict) -> None:
    upstream = Upstream(lambda _: httpx.Response(status, json=error))
    with pytest.raises(InvalidRequest) as info:
        run_stream(upstream)
    assert info.value.message.startswith("The upstream model rejected the request: ")
    assert info.value.message.endswith(error.get("error", error)["message"])
    assert info.value.param == error.get("error", error).get("param")
    assert info.value.code == (error.get("error", {}).get("code"))


def error_stream(*payloads: Any, done: bool = True) -> Handler:
    return lambda _: sse_response(sse(*payloads, done=done))


def error_status(status: int, **kwargs: Any) -> Handler:
    return lambda _: httpx.Response(status, **kwargs)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (error_status(500, json={"error": {"message": "CUDA out of memory"}}), "HTTP 500: CUDA out of memory"),
        (error_status(401, json={"error": {"message": f"Incorrect API key provided: {KEY}"}}), "HTTP 401"),
        (error_status(403, json={"error": "forbidden"}), "HTTP 403"),
        (error_status(429, json={"error": {"message": "Rate limit reached"}}), "HTTP 429: Rate limit reached"),
        (error_status(502, text="<html>Bad Gateway</html>"), "HTTP 502"),
        (error_status(400, text="not json at all"), "HTTP 400"),
        (error_stream(delta("a"), "{not json"), "an event that is not JSON"),
        (error_stream(delta("a"), {"choices": "nope"}), "a chunk that does not follow the OpenAI API"),
        (error_stream(delta("a"), {"error": {"message": f"engine died, key {KEY}"}}), "mid-stream: engine died"),
        (error_stream(delta("a"), done=False), "ended without a finish reason"),
    ],
    ids=[
        "500",
        "401-quoting-key",
        "403",
        "429",
        "html-body",
        "400-garbage",
        "bad-sse-json",
        "bad-chunk",
        "in-stream-error",
        "truncated",
    ],
)
def test_upstream_failures_become_upstream_error(handler: Handler, expected: str) -> None:
    with pytest.raises(UpstreamError) as info:
        run_stream(Upstream(handler))
    assert expected in info.value.message
    assert "'local-m'" in info.value.message and "http://upstream.test/v1" in info.value.message
    assert KEY not in info.value.message and KEY not in str(info.value)


class SlowBody(httpx.AsyncByteStream):
    """A response body that sends `parts`, then stays silent for `stall` seconds; records that it was closed."""

    def __init__(self, parts: list[bytes], stall: float) -> None:
        self._parts = parts
        self._stall = stall
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part
        await asyncio.sleep(self._stall)

    async def aclose(self) -> None:
        self.closed = True


def test_a_stalled_stream_times_out_after_about_the_timeout() -> None:
    body = SlowBody([sse(delta("first"), done=False)], stall=30)
    upstream = Upstream(lambda _: httpx.Response(200, stream=body))
    engine = upstream.text_engine(timeout=0.3)
    received: list[Chunk] = []

    async def consume() -> None:
        try:
            async for chunk in engine.stream(HELLO):
                received.append(chunk)
        finally:
            await engine.close()

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as info:
        asyncio.run(consume())
    assert 0.25 < time.monotonic() - started < 2
    assert received == [Chunk(text="first")]
    assert "within 0.3 s" in info.value.message and KEY not in info.value.message
    assert body.closed


def test_stopping_the_iteration_closes_the_upstream_response() -> None:
    body = SlowBody([sse(delta("first"), done=False)], stall=30)
    engine = Upstream(lambda _: httpx.Response(200, stream=body)).text_engine()

    async def first_chunk_then_stop() -> None:
        stream = engine.stream(HELLO)
        try:
            assert await anext(stream) == Chunk(text="first")
            await stream.aclose()
            assert body.closed  # at once, not when the garbage collector gets to it
        finally:
            await engine.close()

    asyncio.run(asyncio.wait_for(first_chunk_then_stop(), 5))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_an_upstream_error() -> None:
    engine = OpenAICompatTextEngine("local-m", f"http://127.0.0.1:{free_port()}/v1", KEY, "upstream-m", timeout=5)
    with pytest.raises(UpstreamError) as info:
        asyncio.run(collect(engine, HELLO))
    assert "could not be reached" in info.value.message and KEY not in info.value.message


def embedding_engine(handler: Handler, dimensions: int = 2) -> tuple[Upstream, OpenAICompatEmbeddingEngine]:
    upstream = Upstream(handler)
    engine = OpenAICompatEmbeddingEngine(
        "local-e", BASE_URL, KEY, "upstream-e", dimensions, transport=upstream.transport
    )
    return upstream, engine


async def embed(engine: OpenAICompatEmbeddingEngine, texts: list[str]):
    try:
        return await engine.embed(texts)
    finally:
        await engine.close()


def test_embeddings_come_back_in_input_order_with_usage() -> None:
    answer = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 2.0]},
            {"object": "embedding", "index": 0, "embedding": [0.6, 0.8]},
        ],
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }
    upstream, engine = embedding_engine(lambda _: httpx.Response(200, json=answer))
    result = asyncio.run(embed(engine, ["first", "second"]))

    assert upstream.requests[0].url == "http://upstream.test/v1/embeddings"
    assert upstream.body == {"model": "upstream-e", "input": ["first", "second"], "encoding_format": "float"}
    assert result.vectors == [pytest.approx([0.6, 0.8]), pytest.approx([0.0, 1.0])]  # scaled to unit length
    assert all(math.isclose(math.hypot(*vector), 1.0) for vector in result.vectors)
    assert result.prompt_tokens == 6


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}]}, "configured 2 dimensions"),
        ({"data": []}, "do not match the 1 inputs"),
        ({"data": "nope"}, "does not follow the OpenAI API"),
    ],
)
def test_embeddings_that_do_not_fit_are_an_upstream_error(answer: dict, expected: str) -> None:
    _, engine = embedding_engine(lambda _: httpx.Response(200, json=answer))
    with pytest.raises(UpstreamError, match=expected):
        asyncio.run(embed(engine, ["text"]))


def test_embedding_errors_are_mapped_like_text_errors() -> None:
    too_long = {"error": {"message": "input is too long", "param": "input"}}
    _, engine = embedding_engine(lambda _: httpx.Response(400, json=too_long))
    with pytest.raises(InvalidRequest, match="input is too long"):
        asyncio.run(embed(engine, ["text"]))
    _, engine = embedding_engine(lambda _: httpx.Response(401, json={"error": {"message": f"bad key {KEY}"}}))
    with pytest.raises(UpstreamError) as info:
        asyncio.run(embed(engine, ["text"]))
    assert "HTTP 401" in info.value.message and KEY not in info.value.message


@contextmanager
def serve_on_loopback(app: Starlette) -> Iterator[str]:
    """Run `app` under uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_real_upstream_is_streamed_chunk_by_chunk_and_disconnected_on_stop() -> None:
    sent: list[float] = []
    stopped = threading.Event()

    async def chat_completions(request: Request) -> StreamingResponse:
        parts = (await request.json())["max_tokens"]

        async def events() -> AsyncIterator[bytes]:
            try:
                for i in range(parts):
                    sent.append(time.monotonic())
                    yield sse(delta(f"part{i} "), done=False)
                    await asyncio.sleep(0.15)
                yield sse(delta(finish="stop"), usage_chunk(1, parts))
            finally:
                stopped.set()

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])

    async def scenario(base_url: str) -> None:
        engine = OpenAICompatTextEngine("local-m", base_url, KEY, "upstream-m", timeout=5)
        try:
            received: list[tuple[float, Chunk]] = []
            async for chunk in engine.stream(
                GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            ):
                received.append((time.monotonic(), chunk))
            assert [chunk.text for _, chunk in received[:-1]] == ["part0 ", "part1 ", "part2 ", "part3 "]
            assert received[-1][1] == Chunk(finish_reason="stop", usage=Usage(1, 4))
            assert received[0][0] < sent[-1], "the first chunk only arrived once the last was sent"

            # Stopping after the first chunk of a long stream makes the upstream stop too.
            stopped.clear()
            sent.clear()
            stream = engine.stream(GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=100))
            assert await anext(stream) == Chunk(text="part0 ")
            await stream.aclose()
            assert await asyncio.to_thread(stopped.wait, 5), "the upstream kept streaming after we stopped"
            assert len(sent) < 100
        finally:
            await engine.close()

    with serve_on_loopback(app) as base_url:
        asyncio.run(asyncio.wait_for(scenario(base_url), 30))
