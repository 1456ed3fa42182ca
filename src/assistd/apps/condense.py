"""Map-reduce for the summariser: a text too long for the model's context is cut into parts that fit, each
part is summarised (map), and the part summaries stand in for the text; this repeats until the text fits. The
run's own generation, with the style the user asked for, is then the reduce step. Nothing is cut off unread.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from assistd.engines.base import GenerationRequest, TextEngine, Usage

PART_INSTRUCTIONS = (
    "Summarise this part of a longer text in a few sentences. Keep every name, number and fact that matters; add "
    "nothing."
)
PART_SUMMARY_TOKENS = 200
MAX_ROUNDS = 4
_BREAK = re.compile(r"\n\s*\n|(?<=[.!?])\s+")


@dataclass(frozen=True)
class Condensed:
    request: GenerationRequest
    usage: Usage
    rounds: int


def split(text: str, parts: int) -> list[str]:
    """`text` in `parts` pieces of about equal length, cut at paragraph or sentence ends where there are any."""
    if parts <= 1:
        return [text]
    target = len(text) / parts
    pieces: list[str] = []
    start = 0
    for boundary in (m.end() for m in _BREAK.finditer(text)):
        if boundary - start >= target and len(pieces) < parts - 1:
            pieces.append(text[start:boundary])
            start = boundary
    pieces.append(text[start:])
    # no usable boundaries: cut by length
    if len(pieces) < parts and len(text) > target * 1.5:
        size = math.ceil(len(text) / parts)
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return [piece for piece in pieces if piece.strip()]


async def condense(engine: TextEngine, request: GenerationRequest, budget: int) -> Condensed:
    """`request` with its last user message summarised part by part until the prompt fits in `budget` tokens."""
    messages = list(request.messages or [])
    last = max(i for i, message in enumerate(messages) if message["role"] == "user")
    usage = Usage(0, 0)
    for rounds in range(MAX_ROUNDS + 1):
        tokens = await engine.count_prompt_tokens(replace(request, messages=messages))
        if tokens is None or tokens <= budget or rounds == MAX_ROUNDS:
            return Condensed(replace(request, messages=messages), usage, rounds)
        text = str(messages[last]["content"])
        parts = split(text, math.ceil(tokens / max(budget // 2, 1)))
        summaries = []
        for part in parts:
            summary, used = await _generate(engine, _part_request(part))
            summaries.append(summary.strip())
            usage += used
        messages[last] = {**messages[last], "content": "\n\n".join(summaries)}
    return Condensed(replace(request, messages=messages), usage, MAX_ROUNDS)


def _part_request(text: str) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "system", "content": PART_INSTRUCTIONS}, {"role": "user", "content": text}],
        max_tokens=PART_SUMMARY_TOKENS,
        temperature=0.0,
    )


async def _generate(engine: TextEngine, request: GenerationRequest) -> tuple[str, Usage]:
    text, usage = "", Usage(0, 0)
    async for chunk in engine.stream(request):
        text += chunk.text
        usage = chunk.usage or usage
    return text, usage
