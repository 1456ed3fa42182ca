"""Chat completions, legacy completions and embeddings over the model registry, in OpenAI's wire shapes.

Blocking answers collect an engine's chunks; streams turn them into chat.completion.chunk / text_completion
objects as they come. Generation happens while the client listens: if it goes away, the stream is closed and
the engine stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from assistd import metrics
from assistd.clock import now
from assistd.engines.base import Chunk, GenerationRequest, Usage
from assistd.engines.registry import ModelRegistry
from assistd.errors import AssistdError, InvalidRequest
from assistd.generation.pipeline import collect, resolve
from assistd.protocol import wire
from assistd.schemas.chat import ChatCompletionCreate
from assistd.schemas.completions import CompletionCreate
from assistd.schemas.embeddings import EmbeddingCreate
from assistd.services.principal import Principal
from assistd.services.serialize import to_stored
from assistd.services.usage import UsageService

log = logging.getLogger(__name__)


def _sampling(body: ChatCompletionCreate | CompletionCreate) -> dict[str, Any]:
    """The sampling fields chat and legacy completions share."""
    stop = () if body.stop is None else (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    return {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": stop,
        "seed": body.seed,
        "presence_penalty": body.presence_penalty,
        "frequency_penalty": body.frequency_penalty,
        "user": body.user,
    }


async def first_then_rest(chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """Start a generation now (so a bad request fails before any byte is sent), yield it lazily afterwards."""
    first = await anext(chunks)

    async def replay() -> AsyncIterator[Chunk]:
        yield first
        async for chunk in chunks:
            yield chunk

    return replay()


def error_event(exc: Exception) -> dict[str, Any]:
    """What a stream sends when generation fails after the 200: the SDK raises it as an APIError."""
    if isinstance(exc, AssistdError):
        return wire.error(exc.message, error_type=exc.error_type, param=exc.param, code=exc.code)
    log.exception("generation failed mid-stream", exc_info=exc)
    return wire.error("The model failed while generating.", error_type="server_error")


class GenerationService:
    def __init__(self, registry: ModelRegistry, usage: UsageService) -> None:
        self.registry = registry
        self.usage = usage

    async def _record(
        self, principal: Principal, kind: str, model: str, object_id: str | None, usage: Usage, started: float
    ) -> None:
        """Record a finished generation's usage (and its speed in the metrics). Shielded: a client that leaves
        now (api/disconnect.py cancels its request) cannot cut the write in half."""
        metrics.observe_generation(model, usage.completion_tokens, time.perf_counter() - started)
        await asyncio.shield(self.usage.record(principal, kind, model, object_id, usage))

    # -- chat -------------------------------------------------------------------------------------------

    def _chat_request(self, body: ChatCompletionCreate) -> GenerationRequest:
        return GenerationRequest(
            messages=body.message_dicts(),
            max_tokens=body.token_limit(),
            **_sampling(body),
            tools=to_stored(body.tools) or (),
            tool_choice=to_stored(body.tool_choice),
            parallel_tool_calls=body.parallel_tool_calls is not False,
            response_format=to_stored(body.response_format) if body.response_format != "auto" else None,
            prompt_cache_key=body.prompt_cache_key,
        )

    async def chat(self, principal: Principal, body: ChatCompletionCreate) -> dict[str, Any]:
        engine = resolve(self.registry, body.model).engine
        request = self._chat_request(body)
        choices, usage, started = [], Usage(0, 0), time.perf_counter()
        for index in range(body.n or 1):
            collected = await collect(engine, request)
            message = wire.chat_message(collected.text, collected.calls())
            choices.append(wire.chat_choice(index, message, collected.finish_reason))
            usage += collected.usage if index == 0 else collected.usage.answer_only()
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        await self._record(principal, "chat.completion", body.model, completion_id, usage, started)
        return wire.chat_completion(completion_id, now(), body.model, choices, usage)

    async def chat_stream(self, principal: Principal, body: ChatCompletionCreate) -> AsyncIterator[dict[str, Any]]:
        """The chunk objects of a streamed chat completion (the caller frames them as SSE)."""
        engine = resolve(self.registry, body.model).engine
        started = time.perf_counter()
        request = self._chat_request(body)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", now()
        first = await first_then_rest(engine.stream(request))

        def chunk(choices: list[dict[str, Any]], counts: Usage | None = None) -> dict[str, Any]:
            return wire.chat_completion_chunk(
                completion_id, created, body.model, choices, include_usage=include_usage, counts=counts
            )

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            total = Usage(0, 0)
            for index in range(body.n or 1):
                stream = first if index == 0 else engine.stream(request)
                yield chunk([wire.chat_chunk_choice(index, wire.chat_opening_delta())])
                async for part in stream:
                    delta = wire.chat_delta(part.text, part.tool_calls)
                    if delta:
                        yield chunk([wire.chat_chunk_choice(index, delta)])
                    if part.finish_reason:
                        yield chunk([wire.chat_chunk_choice(index, {}, part.finish_reason)])
                    if part.usage:
                        total += part.usage if index == 0 else part.usage.answer_only()
            await self._record(principal, "chat.completion", body.model, completion_id, total, started)
            if include_usage:
                yield chunk([], total)

        return chunks()

    # -- legacy completions -----------------------------------------------------------------------------

    def _completion_requests(self, body: CompletionCreate) -> list[GenerationRequest]:
        return [
            GenerationRequest(
                prompt=prompt,
                max_tokens=body.max_tokens,
                **_sampling(body),
            )
            for prompt in body.prompts()
            for _ in range(body.n or 1)
        ]

    async def complete(self, principal: Principal, body: CompletionCreate, model: str) -> dict[str, Any]:
        engine = resolve(self.registry, model).engine
        choices, usage, started = [], Usage(0, 0), time.perf_counter()
        requests = self._completion_requests(body)
        for index, request in enumerate(requests):
            collected = await collect(engine, request)
            text = ((request.prompt or "") if body.echo else "") + collected.text
            choices.append(wire.text_choice(index, text, collected.finish_reason))
            usage += collected.usage if index % (body.n or 1) == 0 else collected.usage.answer_only()
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        await self._record(principal, "text_completion", model, completion_id, usage, started)
        return wire.text_completion(completion_id, now(), model, choices, usage)

    async def complete_stream(
        self, principal: Principal, body: CompletionCreate, model: str
    ) -> AsyncIterator[dict[str, Any]]:
        engine = resolve(self.registry, model).engine
        started = time.perf_counter()
        requests = self._completion_requests(body)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        completion_id, created = f"cmpl-{uuid.uuid4().hex}", now()
        first = await first_then_rest(engine.stream(requests[0]))

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            usage = Usage(0, 0)
            for index, request in enumerate(requests):
                if body.echo:
                    choice = wire.text_choice(index, request.prompt or "", None)
                    yield wire.text_completion_chunk(completion_id, created, model, [choice])
                async for part in first if index == 0 else engine.stream(request):
                    if part.text or part.finish_reason:
                        choice = wire.text_choice(index, part.text, part.finish_reason)
                        yield wire.text_completion_chunk(completion_id, created, model, [choice])
                    if part.usage:
                        usage += part.usage if index % (body.n or 1) == 0 else part.usage.answer_only()
            await self._record(principal, "text_completion", model, completion_id, usage, started)
            if include_usage:
                yield wire.text_completion_chunk(completion_id, created, model, [], usage)

        return chunks()

    # -- embeddings -------------------------------------------------------------------------------------

    async def embed(self, principal: Principal, body: EmbeddingCreate) -> dict[str, Any]:
        engine = self.registry.embedding(body.model)
        started = time.perf_counter()
        if body.dimensions is not None and body.dimensions != engine.dimensions:
            raise InvalidRequest(
                f"'{body.model}' makes vectors of {engine.dimensions} dimensions and cannot shorten them.",
                param="dimensions",
            )
        result = await engine.embed(body.texts())
        await self._record(principal, "embedding", body.model, None, Usage(result.prompt_tokens, 0), started)
        return wire.embedding_list(
            body.model, result.vectors, result.prompt_tokens, as_base64=body.encoding_format == "base64"
        )
