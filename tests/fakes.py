"""Fakes shared by the tests: engines that play back what a test scripts, plugged in through the production
ModelRegistry (`ModelRegistry({"fake": ScriptedEngine()})`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from assistd.engines.base import Chunk, GenerationRequest


class ScriptedEngine:
    """A TextEngine that plays back chunks, `delay` seconds apart."""

    model_id = "fake"
    context_length = 1000
    late_system_messages = True

    def __init__(self) -> None:
        self.script: list[Chunk] | Exception = []
        self.next_scripts: list[list[Chunk]] = []  # played once each, in order, before `script`
        self.delay = 0.0
        self.requests: list[GenerationRequest] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        script = self.next_scripts.pop(0) if self.next_scripts else self.script
        if isinstance(script, Exception):
            raise script
        for chunk in script:
            await asyncio.sleep(self.delay)
            yield chunk

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return sum(len(str(message.get("content") or "").split()) for message in request.messages)

    def check(self, request: GenerationRequest) -> None:
        pass

    async def close(self) -> None:
        pass
