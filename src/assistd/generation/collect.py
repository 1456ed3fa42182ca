"""What one generation said, put together from the engine's chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistd.engines.base import Chunk, Usage
from assistd.protocol import wire


@dataclass
class Collected:
    """Everything one stream said: its text, its tool calls (by index), why it stopped, and its usage."""

    text: str = ""
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=lambda: Usage(0, 0))

    def add(self, chunk: Chunk) -> None:
        self.text += chunk.text
        wire.extend_tool_calls(self.tool_calls, chunk.tool_calls)
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        if chunk.usage:
            self.usage = chunk.usage

    def calls(self) -> list[dict[str, Any]]:
        """The tool calls in the order the model made them."""
        return [self.tool_calls[index] for index in sorted(self.tool_calls)]
