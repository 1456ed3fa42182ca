"""One file into a vector store's chunks: parse → chunk by tokens → embed (per window of the model's input)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistd.engines.base import EmbeddingEngine
from assistd.retrieval.chunking import TokenChunker
from assistd.retrieval.parsing import MAX_TEXT_CHARS, extract_text
from assistd.retrieval.vectors import encode

EMBED_BATCH = 64
SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two of the embedding model's input positions

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PreparedChunk:
    text: str
    tokens: int
    embedding: bytes  # float32 window vectors, concatenated


async def prepare(
    filename: str,
    data: bytes,
    strategy: dict[str, Any],
    chunker: TokenChunker,
    embedder: EmbeddingEngine,
    progress: Progress | None = None,
    max_chars: int = MAX_TEXT_CHARS,
    deadline: float | None = None,
) -> list[PreparedChunk]:
    """The chunks of one file with their embeddings. Raises parsing's UnsupportedFile / InvalidFile (also for
    text longer than `max_chars`), and its ExtractionTimeout when parsing passes `deadline` (time.monotonic()).

    `progress(done, total)` is called after each embedded batch when given."""
    static = strategy["static"]
    text = await asyncio.to_thread(extract_text, filename, data, max_chars, deadline)
    chunks = await asyncio.to_thread(
        chunker.chunks, text, static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    )
    window = max(1, embedder.max_input_tokens - SPECIAL_TOKENS)
    windows = await asyncio.to_thread(lambda: [chunker.windows(chunk.text, window) for chunk in chunks])
    flat = [piece for pieces in windows for piece in pieces]
    vectors: list[list[float]] = []
    for start in range(0, len(flat), EMBED_BATCH):
        vectors.extend((await embedder.embed(flat[start : start + EMBED_BATCH])).vectors)
        if progress is not None:
            progress(len(vectors), len(flat))
    prepared = []
    position = 0
    for chunk, pieces in zip(chunks, windows, strict=True):
        prepared.append(PreparedChunk(chunk.text, chunk.tokens, encode(vectors[position : position + len(pieces)])))
        position += len(pieces)
    return prepared
