"""Engines that forward to an OpenAI-compatible upstream: vLLM, SGLang, Ollama, llama.cpp server, OpenAI itself.

Text goes through the upstream's streaming `/chat/completions` (or `/completions` for a plain prompt) and its
server-sent events are mapped to Chunks; embeddings go through `/embeddings`. Each engine holds one shared
`httpx.AsyncClient`. Every wait on the upstream is bounded: a stream that stays silent for longer than the
timeout fails with UpstreamTimeout. Upstream failures become the typed errors of assistd.errors: a request the
upstream rejects as the caller's fault becomes InvalidRequest, anything else UpstreamError, and no message ever
carries the upstream API key.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

import httpx

from assistd.engines.base import (
    Chunk,
    Embeddings,
    FinishReason,
    GenerationRequest,
    ToolCallDelta,
    Usage,
)
from assistd.errors import AssistdError, InvalidRequest, UpstreamError, UpstreamTimeout

CONNECT_TIMEOUT = 10.0
# Upstream statuses that mean the caller's request was wrong, not our configuration or the upstream.
CALLER_FAULT_STATUSES = frozenset({400, 404, 413, 422})
MAX_DETAIL_CHARS = 500
_Error = TypeVar("_Error", bound=AssistdError)
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


class _Upstream:
    """The HTTP side both engines share: the client, bounded requests and the mapping of failures to errors."""

    def __init__(
        self,
        model_id: str,
        base_url: str,
        api_key: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._api_key = api_key
        self._timeout = timeout
        self._connect_timeout = min(CONNECT_TIMEOUT, timeout)
        url = httpx.URL(base_url)
        # Named by scheme, host and path only: user info or a query in the URL may hold secrets.
        self._where = f"The upstream of model '{model_id}' ({url.scheme}://{url.netloc.decode()}{url.path})"
        self._client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            timeout=httpx.Timeout(timeout, connect=self._connect_timeout),
            # No cap on connections: the upstream queues requests itself, a local cap would only turn load into 504s.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
            transport=transport,
        )

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """POST `body` and return the decoded JSON answer."""
        try:
            async with asyncio.timeout(self._connect_timeout + self._timeout):
                response = await self._client.post(path, json=body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self._timed_out() from exc
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise self._status_error(response.status_code, response.content)
        try:
            return response.json()
        except ValueError as exc:
            raise self.malformed("a body that is not JSON") from exc

    async def events(self, path: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """POST `body` and yield the JSON payloads of the server-sent events that answer it, up to `[DONE]`.

        Each `data:` line is one payload; comments, blank lines and other fields are skipped. The response is
        closed when the iteration ends, however it ends.
        """
        try:
            async with asyncio.timeout(self._connect_timeout + self._timeout):
                response = await self._client.send(self._client.build_request("POST", path, json=body), stream=True)
            try:
                if response.is_error:
                    async with asyncio.timeout(self._timeout):
                        content = await response.aread()
                    raise self._status_error(response.status_code, content)
                lines = response.aiter_lines()
                while True:
                    async with asyncio.timeout(self._timeout):
                        line = await anext(lines, None)
                    if line is None:
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    yield self._event_payload(data)
            finally:
                await response.aclose()
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self._timed_out() from exc
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from exc

    def _event_payload(self, data: str) -> dict[str, Any]:
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise self.malformed("an event that is not JSON") from exc
        if not isinstance(payload, dict):
            raise self.malformed("an event that is not a JSON object")
        message = _error_message(payload)
        if message is not None:
            raise self._error(UpstreamError, f"{self._where} failed mid-stream: {message}")
        return payload

    async def close(self) -> None:
        await self._client.aclose()

    def malformed(self, what: str) -> UpstreamError:
        """The error for an answer that does not follow the OpenAI API."""
        return self._error(UpstreamError, f"{self._where} sent {what}.")

    def _timed_out(self) -> UpstreamTimeout:
        return self._error(UpstreamTimeout, f"{self._where} did not answer within {self._timeout:g} s.")

    def _unreachable(self, exc: httpx.RequestError) -> UpstreamError:
        return self._error(UpstreamError, f"{self._where} could not be reached: {str(exc) or type(exc).__name__}")

    def _status_error(self, status: int, content: bytes) -> AssistdError:
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        message = _error_message(body) if isinstance(body, dict) else None
        if message is None:
            return self._error(UpstreamError, f"{self._where} failed with HTTP {status}.")
        if status in CALLER_FAULT_STATUSES:
            error = body.get("error")
            details = error if isinstance(error, dict) else body
            param, code = details.get("param"), details.get("code")
            return self._error(
                InvalidRequest,
                f"The upstream model rejected the request: {message}",
                param=param if isinstance(param, str) else None,
                code=code if isinstance(code, str) else None,
            )
        if status in (401, 403):
            # The upstream refused our credentials; its message may quote them.
            return self._error(UpstreamError, f"{self._where} refused our credentials (HTTP {status}).")
        return self._error(UpstreamError, f"{self._where} failed with HTTP {status}: {message}")

    def _error(self, kind: type[_Error], message: str, *, param: str | None = None, code: str | None = None) -> _Error:
        """An error of `kind`, its message shortened and cleared of the API key."""
        if self._api_key:
            message = message.replace(self._api_key, "[redacted]")
        if len(message) > MAX_DETAIL_CHARS:
            message = message[:MAX_DETAIL_CHARS] + "…"
        return kind(message, param=param, code=code)


def _error_message(body: dict[str, Any]) -> str | None:
    """The message of an OpenAI error body: `{"error": {"message": ...}}`, `{"error": "..."}`, or vLLM's older
    `{"object": "error", "message": ...}`; None when `body` is not an error."""
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    if body.get("object") == "error" and isinstance(body.get("message"), str):
        return body["message"]
    return None


class OpenAICompatTextEngine:
    """A TextEngine backed by an OpenAI-compatible upstream's streaming (chat) completions."""

    late_system_messages = False  # the upstream's chat template is unknown: Gemma's and Mistral's refuse them

    def __init__(
        self,
        model_id: str,
        base_url: str,
        api_key: str | None,
        upstream_model: str,
        timeout: float = 60.0,
        context_length: int = 0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model_id = model_id
        self.context_length = context_length
        self._upstream_model = upstream_model
        self._upstream = _Upstream(model_id, base_url, api_key, timeout, transport)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Forward `request` and yield its text and tool-call deltas, then one chunk with finish reason and usage."""
        chat = request.messages is not None
        path, body = ("/chat/completions" if chat else "/completions"), self._body(request)
        finish: str | None = None
        usage: Usage | None = None
        saw_tool_calls = False
        async with aclosing(self._upstream.events(path, body)) as events:
            async for payload in events:
                try:
                    text, tool_calls, chunk_finish, chunk_usage = _parse_chunk(payload, chat)
                except (AttributeError, TypeError, ValueError) as exc:
                    raise self._upstream.malformed("a chunk that does not follow the OpenAI API") from exc
                finish = chunk_finish or finish
                usage = chunk_usage or usage
                saw_tool_calls = saw_tool_calls or bool(tool_calls)
                if text or tool_calls:
                    yield Chunk(text=text, tool_calls=tool_calls)
        if finish is None:
            raise self._upstream.malformed("a stream that ended without a finish reason")
        reason = FINISH_REASONS.get(finish, "stop")
        yield Chunk(finish_reason="tool_calls" if saw_tool_calls and reason == "stop" else reason, usage=usage)

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        """The upstream request: the prompt or messages, and only the sampling fields the request sets."""
        body: dict[str, Any] = {
            "model": self._upstream_model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.messages is not None:
            body["messages"] = list(request.messages)
        elif request.prompt is not None:
            body["prompt"] = request.prompt
        else:
            raise InvalidRequest("Either messages or a prompt is required.")
        sampling = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
            "user": request.user,
            "prompt_cache_key": request.prompt_cache_key,
        }
        body.update({name: value for name, value in sampling.items() if value is not None})
        if request.stop:
            body["stop"] = list(request.stop)
        if request.messages is not None:
            if request.tools:
                body["tools"] = list(request.tools)
                body["parallel_tool_calls"] = request.parallel_tool_calls
                if request.tool_choice is not None:
                    body["tool_choice"] = request.tool_choice
            if request.response_format is not None:
                body["response_format"] = request.response_format
        return body

    async def count_prompt_tokens(self, request: GenerationRequest) -> None:
        """Unknown: the upstream tokenizes."""
        return None

    def check(self, request: GenerationRequest) -> None:
        """Nothing to check here: the upstream enforces (or refuses) tools and formats itself."""

    async def close(self) -> None:
        await self._upstream.close()


def _parse_chunk(
    payload: dict[str, Any], chat: bool
) -> tuple[str, tuple[ToolCallDelta, ...], str | None, Usage | None]:
    """Text, tool-call deltas, finish reason and usage of one upstream chunk; only choice 0 counts.

    Raises AttributeError, TypeError or ValueError for a chunk of the wrong shape.
    """
    choice = next((c for c in payload.get("choices") or () if c.get("index", 0) == 0), None)
    usage = _parse_usage(payload.get("usage"))
    if choice is None:
        return "", (), None, usage
    if chat:
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        tool_calls = tuple(_parse_tool_call(i, call) for i, call in enumerate(delta.get("tool_calls") or ()))
    else:
        text = choice.get("text") or ""
        tool_calls = ()
    finish = choice.get("finish_reason")
    if not isinstance(text, str) or not isinstance(finish, str | None):
        raise TypeError("text and finish_reason must be strings")
    return text, tool_calls, finish, usage


def _parse_tool_call(position: int, call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function") or {}
    arguments = function.get("arguments") or ""
    if not isinstance(arguments, str):
        raise TypeError("function.arguments must be a string")
    return ToolCallDelta(
        index=int(call.get("index", position)),
        id=call.get("id") or None,
        name=function.get("name") or None,
        arguments=arguments,
    )


def _parse_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int):
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    cached = cached if isinstance(cached, int) and 0 <= cached <= prompt_tokens else 0
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cached_tokens=cached)


class OpenAICompatEmbeddingEngine:
    """An EmbeddingEngine backed by an OpenAI-compatible upstream's `/embeddings`."""

    def __init__(
        self,
        model_id: str,
        base_url: str,
        api_key: str | None,
        upstream_model: str,
        dimensions: int,
        max_input_tokens: int = 8192,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model_id = model_id
        self.dimensions = dimensions
        self.max_input_tokens = max_input_tokens
        self._upstream_model = upstream_model
        self._upstream = _Upstream(model_id, base_url, api_key, timeout, transport)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Vectors for `texts` in order, scaled to unit length, and the input tokens the upstream counted."""
        if not texts:
            return Embeddings(vectors=[], prompt_tokens=0)
        body = {"model": self._upstream_model, "input": list(texts), "encoding_format": "float"}
        answer = await self._upstream.post_json("/embeddings", body)
        try:
            items = sorted(answer["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
            usage = answer.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self._upstream.malformed("an embeddings answer that does not follow the OpenAI API") from exc
        if [item["index"] for item in items] != list(range(len(texts))):
            raise self._upstream.malformed(f"embeddings that do not match the {len(texts)} inputs")
        if any(len(vector) != self.dimensions for vector in vectors):
            raise self._upstream.malformed(f"vectors that do not have the configured {self.dimensions} dimensions")
        return Embeddings(vectors=[_unit(vector) for vector in vectors], prompt_tokens=prompt_tokens)

    async def close(self) -> None:
        await self._upstream.close()


def _unit(vector: list[float]) -> list[float]:
    norm = math.hypot(*vector)
    return [x / norm for x in vector] if norm else vector
