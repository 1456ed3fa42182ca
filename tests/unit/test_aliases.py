"""Model name resolution: model ids, exact aliases, glob patterns and the built-in OpenAI families."""

from __future__ import annotations

import pytest

from assistd.engines.aliases import AliasError, Aliases, openai_families
from assistd.engines.registry import BUILTIN_CONFIG, ConfigError, ModelsConfig, build_aliases

MODELS = ["small", "big", "embedder"]


def test_precedence_model_id_then_exact_alias_then_pattern_then_builtin() -> None:
    aliases = Aliases(
        MODELS,
        {"gpt-4*": "big", "gpt-4o": "small", "big": "small", "gpt-4o-mini": "embedder"},
        openai_families("small", "embedder"),
    )
    assert aliases.resolve("big") == "big"  # a model id beats an alias of the same name
    assert aliases.resolve("gpt-4o") == "small"  # an exact alias beats a pattern listed before it
    assert aliases.resolve("gpt-4o-mini") == "embedder"
    assert aliases.resolve("gpt-4-turbo") == "big"  # the file's pattern beats the built-in family
    assert aliases.resolve("gpt-3.5-turbo") == "small"  # the built-in family
    assert aliases.resolve("text-embedding-3-large") == "embedder"
    assert aliases.resolve("claude-3") is None


def test_file_patterns_apply_in_the_file_order() -> None:
    aliases = Aliases(MODELS, {"gpt-4o*": "small", "gpt-*": "big"})
    assert aliases.resolve("gpt-4o-2024-08-06") == "small"
    assert aliases.resolve("gpt-4") == "big"


def test_glob_syntax_question_mark_and_classes() -> None:
    aliases = Aliases(MODELS, {"o[13]-mini": "small", "model-?": "big", "x[!a]": "embedder"})
    assert [aliases.resolve(name) for name in ("o1-mini", "o3-mini", "o2-mini")] == ["small", "small", None]
    assert [aliases.resolve(name) for name in ("model-a", "model-ab")] == ["big", None]
    assert [aliases.resolve(name) for name in ("xb", "xa")] == ["embedder", None]
    assert Aliases(MODELS, {"a.b*": "big"}).resolve("aXb") is None  # a dot is a dot, not any character


def test_an_empty_target_unmaps_a_family() -> None:
    aliases = Aliases(MODELS, {"o1*": "", "gpt-3.5-turbo": ""}, openai_families("small", "embedder"))
    assert aliases.resolve("o1-preview") is None
    assert aliases.resolve("gpt-3.5-turbo") is None
    assert aliases.resolve("gpt-4o") == "small"
    assert aliases.exact == {}


def test_openai_families_cover_the_names_existing_code_passes() -> None:
    aliases = Aliases(MODELS, {}, openai_families("small", "embedder"))
    text_names = [
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-instruct",
        "gpt-4-1106-preview",
        "gpt-4o",
        "chatgpt-4o-latest",
        "o1-preview",
        "o3-mini",
        "o4-mini",
        "davinci-codex",
        "davinci-002",
        "babbage-002",
        "text-davinci-003",
        "code-davinci-002",
        "curie",
        "ada",
    ]
    assert {name: aliases.resolve(name) for name in text_names} == dict.fromkeys(text_names, "small")
    for name in ("text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large"):
        assert aliases.resolve(name) == "embedder"
    assert Aliases(MODELS, {}, None).resolve("gpt-4o") is None  # the families turned off


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"gpt-[4": "small"}, "aliases.gpt-[4"),
        ({"gpt-4]": "small"}, "aliases.gpt-4]"),
        ({"gpt-*": "missing"}, "aliases.gpt-*"),
        ({"gpt-4": "missing"}, "aliases.gpt-4"),
    ],
)
def test_a_bad_alias_stops_start_up_naming_the_entry(table: dict[str, str], named: str) -> None:
    config = ModelsConfig.model_validate({**BUILTIN_CONFIG, "aliases": table})
    with pytest.raises(ConfigError) as info:
        build_aliases(config, openai_aliases=True, embedding_model="all-minilm-l6-v2")
    assert named in str(info.value)


def test_builtin_configuration_maps_families_to_the_bundled_models() -> None:
    config = ModelsConfig.model_validate(BUILTIN_CONFIG)
    aliases = build_aliases(config, openai_aliases=True, embedding_model="all-minilm-l6-v2")
    assert aliases.resolve("gpt-4o") == "smollm2-135m-instruct"
    assert aliases.resolve("text-embedding-3-small") == "all-minilm-l6-v2"
    assert any("gpt-*" in line and "smollm2-135m-instruct" in line for line in aliases.describe())
    off = build_aliases(config, openai_aliases=False, embedding_model="all-minilm-l6-v2")
    assert off.resolve("gpt-4o") is None and off.describe() == []


def test_families_go_to_the_first_text_model_of_a_models_file() -> None:
    config = ModelsConfig.model_validate(
        {
            "models": {
                "vectors": {"engine": "onnx_embeddings"},
                "upstream": {"engine": "openai_compat", "base_url": "http://127.0.0.1:9/v1", "upstream_model": "m"},
                "local": {"engine": "llama_cpp", "path": "/models/x.gguf"},
            }
        }
    )
    aliases = build_aliases(config, openai_aliases=True, embedding_model="vectors")
    assert aliases.resolve("gpt-4o") == "upstream"
    assert aliases.resolve("text-embedding-ada-002") == "vectors"
    # an embedding model the file does not have leaves the embedding family out
    assert build_aliases(config, openai_aliases=True, embedding_model="nope").resolve("text-embedding-3-small") is None


def test_an_alias_needs_a_name() -> None:
    with pytest.raises(AliasError):
        Aliases(MODELS, {"": "small"})


def test_the_setting_turns_the_families_off(tmp_path) -> None:
    import asyncio

    from assistd.app import load_registry
    from assistd.config import Settings
    from assistd.errors import NotFound

    on = load_registry(Settings(data_dir=tmp_path))
    off = load_registry(Settings(data_dir=tmp_path, openai_aliases=False))
    try:
        assert on.text("gpt-4o").model_id == "smollm2-135m-instruct"
        assert on.describe("gpt-4o")["id"] == "gpt-4o"
        with pytest.raises(NotFound):
            off.text("gpt-4o")
        assert off.text("smollm2-135m-instruct").model_id == "smollm2-135m-instruct"
    finally:
        asyncio.run(on.close())
        asyncio.run(off.close())
