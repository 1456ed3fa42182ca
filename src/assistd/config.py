"""Settings, read once at start-up from ASSISTD_* environment variables.

Every field here is documented in docs/configuration.md; a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings. Each field `x` is set by the environment variable `ASSISTD_X`."""

    model_config = SettingsConfigDict(env_prefix="ASSISTD_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port the HTTP server listens on.")
    data_dir: Path = Field(Path("data"), description="Directory for the SQLite database and the first API key.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL of the store; default: SQLite file `assistd.db` in the data directory.",
    )
    database_pool_size: int = Field(
        10, ge=1, description="PostgreSQL: connections each process keeps open (plus as many again at peaks)."
    )
    database_pool_timeout: float = Field(
        30.0, gt=0, description="PostgreSQL: seconds a request waits for a free connection before it fails (503)."
    )
    database_connect_timeout: float = Field(
        5.0, gt=0, description="PostgreSQL: seconds one connection attempt may take."
    )
    database_retry_seconds: float = Field(
        5.0,
        ge=0,
        description="PostgreSQL: how long a lost connection is retried (with backoff) before a request gets 503.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (`redis://host:6379/0`) carrying run events between processes; unset: in-process "
        "events, or events read from the database when several processes share it.",
    )
    embedded_worker: bool = Field(
        True, description="Whether `assistd serve` runs a worker in its own process; false when `assistd worker` runs."
    )
    api_processes: int = Field(
        1, ge=1, description="API processes sharing the store; `assistd serve --workers N` sets it to N."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="Largest request body accepted, in bytes; larger bodies get 413."
    )
    body_read_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for the next part of a request body; a body that stalls gets 408."
    )
    header_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest wait for a complete request head (request line and headers), on a new connection or "
        "a kept-alive one; a head that stalls gets 408 and the connection is closed.",
    )
    graceful_shutdown_seconds: float = Field(
        5.0,
        ge=0,
        description="On SIGTERM or SIGINT, how long requests under way may finish before they are cancelled.",
    )
    auth_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a valid API key is remembered; a key revoked from another process stops within this.",
    )
    models_file: Path | None = Field(
        None, description="TOML file of models (engines, aliases); default: the bundled local models."
    )
    openai_aliases: bool = Field(
        True,
        description="Whether OpenAI's model names (`gpt-*`, `o1*`, `davinci*`, `text-embedding-*`, ...) map to the "
        "first text model and the embedding model when no model or alias of the models file matches them.",
    )
    worker_concurrency: int = Field(4, ge=1, description="Runs one worker executes at the same time.")
    run_lease_seconds: float = Field(
        30.0, gt=0, description="How long a worker's claim on a run lasts without a heartbeat (crash takeover time)."
    )
    tool_output_timeout_seconds: int = Field(
        600, ge=1, description="How long a run waits in requires_action for tool outputs before it expires."
    )
    max_tool_rounds: int = Field(
        8,
        ge=1,
        description="Rounds of function calls one run may hand to the client; after that the model answers in text.",
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, gt=0, description="Largest file accepted by `POST /v1/files`, in bytes; larger gets 413."
    )
    files_dir: Path | None = Field(
        None, description="Directory of uploaded files' bytes; default: `files` in the data directory."
    )
    blob_store: Literal["auto", "local", "database"] = Field(
        "auto",
        description="Where uploaded files' bytes live: `local` (`files_dir`), `database` (the store), or `auto`: "
        "the database on PostgreSQL, `files_dir` on SQLite.",
    )
    embedding_model: str = Field(
        "all-minilm-l6-v2", description="Model (from the models file) that embeds vector store chunks and queries."
    )
    ingest_concurrency: int = Field(1, ge=1, description="Files one worker ingests at the same time.")
    ingest_max_characters: int = Field(
        500_000,
        gt=0,
        description="Characters of text one file may hold to be ingested (`invalid_file` beyond; extraction stops "
        "there). Embedding is the slow part: 300,000 characters of prose took 88 s on 2 CPU cores with the bundled "
        "model (~300-380 s per million), so one file takes about 3 minutes at most.",
    )
    ingest_timeout_seconds: float = Field(
        600.0, gt=0, description="Wall-clock time one file's ingestion may take (`server_error` beyond)."
    )
    schema_max_depth: int = Field(
        64,
        ge=1,
        description="Levels a JSON schema (`response_format`, function `parameters`) may be nested (400 beyond).",
    )
    schema_max_subschemas: int = Field(
        10_000, ge=1, description="Subschemas the JSON schemas of one request may hold in all (400 beyond)."
    )
    schema_max_enum_values: int = Field(
        1_000, ge=1, description="Values of one `enum`, or branches of one `anyOf`/`oneOf` (400 beyond)."
    )
    schema_max_repetition: int = Field(
        1_000,
        ge=1,
        description="Largest `minLength`/`minItems` or `pattern` repetition enforced (400 beyond); larger `maxLength`/"
        "`maxItems` are lowered to it.",
    )
    schema_max_grammar_characters: int = Field(
        2_000_000,
        ge=1,
        description="Size of the grammar one request's schemas and functions may need (400 beyond); llama.cpp holds "
        "a grammar in about 45 times its size while it is used.",
    )
    limit_requests_per_minute: int = Field(
        0,
        ge=0,
        description="Requests a project may make per minute (429 beyond); 0: no limit. Per project: "
        "`assistd projects limits`.",
    )
    limit_tokens_per_minute: int = Field(
        0, ge=0, description="Prompt and completion tokens a project may use per minute (429 beyond); 0: no limit."
    )
    limit_active_runs: int = Field(
        1000, ge=0, description="Runs a project may have queued or in progress at once (429 beyond); 0: no limit."
    )
    limit_stored_bytes: int = Field(
        0,
        ge=0,
        description="Bytes of uploaded files a project may keep (429 `insufficient_quota` beyond); 0: no limit.",
    )
    metrics: bool = Field(
        False,
        description="Whether `/metrics` answers in Prometheus' text format, without a key: turn it on only where the "
        "port is not public, or keep the path behind a proxy.",
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="`assistd worker`: port of its own `/metrics` (on `host`); 0: none."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")

    @property
    def resolved_database_url(self) -> str:
        """The store URL, defaulting to a SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'assistd.db').resolve()}"

    @property
    def resolved_files_dir(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    @property
    def first_key_path(self) -> Path:
        """Where `serve` writes the first API key it creates (mode 0600)."""
        return self.data_dir / "api_key"
