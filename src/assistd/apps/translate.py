"""The translator's guard: code, markup and placeholders come through a translation byte for byte.

`ProtectedTranslation` wraps the run's engine. It cuts the text to translate (the run's last user message) into
lines; fenced code blocks, blank lines and each line's markdown prefix (`#`, `-`, `1.`, `>`) are copied, and only
the words of each line go to the model, one line at a time. Inline code, URLs and placeholders (`{name}`,
`{{count}}`, `%s`, `%(name)s`) that the model drops from a line are put back at its end, so every one of them is
in the result. Everything else about the run (streaming, cancellation, usage) is the engine's as usual.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace

from assistd.engines.base import Chunk, GenerationRequest, TextEngine, Usage

_FENCE = re.compile(r"^\s*(```|~~~)")
_PREFIX = re.compile(r"^(\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)*)")
_KEPT = re.compile(r"`[^`\n]+`|https?://\S+|\{\{[^{}\n]+\}\}|\{[A-Za-z0-9_.]*\}|%\([A-Za-z0-9_]+\)[sdif]|%[sdif]")
_WORD = re.compile(r"[^\W\d_]", re.UNICODE)


def pieces(text: str) -> list[tuple[str, str, str]]:
    """(copied prefix, words to translate, copied suffix) for each line of `text`, newlines included."""
    result: list[tuple[str, str, str]] = []
    in_code = False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        if _FENCE.match(body):
            in_code = not in_code
            result.append((line, "", ""))
        elif in_code or not _WORD.search(body):
            result.append((line, "", ""))
        else:
            match = _PREFIX.match(body)
            assert match is not None  # every part of the pattern is optional: it matches every line
            prefix = match.group(1)
            result.append((prefix, body[len(prefix) :], ending))
    return result


def restore(source: str, translated: str) -> str:
    """`translated` on one line, with every kept span of `source` that it lost appended."""
    line = " ".join(translated.strip().split())
    missing = [span for span in _KEPT.findall(source) if span not in line]
    return " ".join([line, *missing]) if missing else line


class ProtectedTranslation:
    """A TextEngine that translates the last user message line by line through `engine`."""

    def __init__(self, engine: TextEngine) -> None:
        self.engine = engine
        self.model_id = engine.model_id
        self.context_length = engine.context_length
        self.late_system_messages = engine.late_system_messages

    async def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return None  # each line is its own request; the run's prompt as a whole is never sent

    def check(self, request: GenerationRequest) -> None:
        self.engine.check(request)

    async def close(self) -> None:
        return None

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        messages = list(request.messages or [])
        last = max(i for i, message in enumerate(messages) if message["role"] == "user")
        instructions = [m for m in messages if m["role"] == "system"]
        spent = Usage(0, 0)
        for prefix, words, suffix in pieces(str(messages[last]["content"])):
            if not words:
                yield Chunk(text=prefix)
                continue
            line_request = replace(
                request,
                messages=[*instructions, {"role": "user", "content": words}],
                max_tokens=max(64, 4 * len(words.split())),
                tools=(),
                tool_choice=None,
                response_format=None,
            )
            translated, usage = "", Usage(0, 0)
            async for chunk in self.engine.stream(line_request):
                translated += chunk.text
                usage = chunk.usage or usage
            spent += usage
            yield Chunk(text=prefix + restore(words, translated) + suffix)
        yield Chunk(finish_reason="stop", usage=spent)
