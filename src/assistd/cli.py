"""The `assistd` command: serve, db upgrade, projects (and their limits) and keys administration, usage, ingest."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from assistd.config import Settings
from assistd.errors import AssistdError
from assistd.lifecycle import FileStatus
from assistd.services.projects import CreatedKey, ProjectService
from assistd.store.database import Database
from assistd.store.migrate import upgrade

app = typer.Typer(help="assistd: a self-hosted OpenAI Assistants API server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(projects_app, name="projects")
apps_app = typer.Typer(help="Ready-made assistants: customer service, summariser, translator.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(apps_app, name="apps")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def _load_settings() -> Settings:
    """Settings from the environment; an invalid value stops here with the variable's name."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "ASSISTD_" + "_".join(str(part) for part in error["loc"]).upper()
            err_console.print(f"[red]invalid setting[/red] {name}: {error['msg']}")
        raise typer.Exit(2) from None


def _prepare() -> Settings:
    """Settings, with the data directory made and the schema brought up to date."""
    settings = _load_settings()
    os.umask(0o077)  # the database, blobs and logs this process writes are its user's alone
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # not ours to change (a mounted volume): leave it as it is
        settings.data_dir.chmod(0o700)  # a directory earlier versions made world-readable
    upgrade(settings.resolved_database_url)
    return settings


def _with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run `action` on the store; an AssistdError is printed and exits 1."""

    async def run() -> T:
        db = Database.from_settings(settings)
        try:
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except AssistdError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def _with_projects(settings: Settings, action: Callable[[ProjectService], Awaitable[T]]) -> T:
    return _with_db(settings, lambda db: action(ProjectService(db)))


def _when(timestamp: int | None) -> str:
    return "" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def _save_first_key(settings: Settings, created: CreatedKey) -> None:
    path = settings.first_key_path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(created.secret + "\n")
    os.chmod(path, 0o600)
    console.print(
        f"Created project 'default' and its first API key (shown once, also saved to {path}):\n"
        f"  [bold]{created.secret}[/bold]",
        soft_wrap=True,
    )


@app.command()
def serve(
    workers: Annotated[
        int, typer.Option(min=1, help="API processes sharing the port (each with the settings of the environment).")
    ] = 1,
) -> None:
    """Apply migrations, create a first project and key if there is none, and serve the API."""
    import uvicorn

    from assistd import logs
    from assistd.api.http_server import uvicorn_options
    from assistd.app import create_app

    if workers > 1:
        os.environ["ASSISTD_API_PROCESSES"] = str(workers)  # read by each process's settings
    settings = _prepare()
    if workers > 1 and settings.metrics:
        from assistd.metrics import share_between_processes

        share_between_processes(settings.data_dir / "metrics")
    logs.configure(settings.log_level)
    registry = _load_models(settings)
    created = _with_projects(settings, lambda projects: projects.ensure_first_key())
    if created is not None:
        _save_first_key(settings, created)
    options = uvicorn_options(settings)
    if workers > 1:  # each process loads its own models; these only proved the configuration loads
        asyncio.run(registry.close())
        del registry
        uvicorn.run("assistd.app:create_app_from_environment", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings, registry), **options)


@app.command()
def worker() -> None:
    """Execute runs and ingest files from the shared store, without serving HTTP (run any number of these)."""
    import signal

    from assistd import logs
    from assistd.runtime.components import Components

    settings = _prepare()
    logs.configure(settings.log_level)
    registry = _load_models(settings)

    async def work() -> None:
        parts = Components.build(settings, registry, with_worker=True)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        assert parts.worker is not None
        if settings.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port, settings.host)
        parts.worker.start()
        err_console.print(f"worker {parts.worker.worker_id} started (concurrency {settings.worker_concurrency})")
        try:
            await stopping.wait()
        finally:
            await parts.close()
            await registry.close()

    asyncio.run(work())


def _load_models(settings: Settings):
    from assistd.app import load_registry
    from assistd.engines.registry import ConfigError

    try:
        return load_registry(settings)
    except ConfigError as exc:
        err_console.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations."""
    _prepare()
    console.print("database is up to date")


@projects_app.command("create")
def projects_create(name: Annotated[str, typer.Argument(help="A unique project name.")]) -> None:
    """Create a project; prints its id."""
    project = _with_projects(_prepare(), lambda projects: projects.create_project(name))
    console.print(project.id)


@projects_app.command("list")
def projects_list() -> None:
    """List projects."""
    rows = _with_projects(_prepare(), lambda projects: projects.list_projects())
    table = Table("id", "name", "created")
    for project in rows:
        table.add_row(project.id, project.name, _when(project.created_at))
    console.print(table)


def _limit_value(option: str, value: str | None) -> int | None:
    """`N` (0: no limit) or `inherit` (the project's limit, or the server's default)."""
    if value is None or value == "inherit":
        return None
    if value.isdigit():
        return int(value)
    err_console.print(f"[red]error:[/red] {option} takes a number (0: no limit) or 'inherit', not '{value}'")
    raise typer.Exit(2)


LimitOption = Annotated[str | None, typer.Option(help="A number (0: no limit) or 'inherit'.", show_default=False)]


@projects_app.command("limits")
def projects_limits(
    project: Annotated[str, typer.Argument(help="Project id or name.")],
    key: Annotated[str | None, typer.Option("--key", help="Set or show the limits of this key (key_...).")] = None,
    rpm: LimitOption = None,
    tpm: LimitOption = None,
    runs: LimitOption = None,
    stored_bytes: LimitOption = None,
) -> None:
    """Show a project's (or one of its keys') limits, or set them: --rpm requests a minute, --tpm tokens a minute,
    --runs runs queued or in progress at once, --stored-bytes bytes of files kept. Applies within seconds."""
    from assistd.services.limit_settings import LIMIT_FIELDS
    from assistd.services.limits import LimitService

    settings = _prepare()
    given = {"--rpm": rpm, "--tpm": tpm, "--runs": runs, "--stored-bytes": stored_bytes}
    values = {
        field: _limit_value(option, value)
        for field, (option, value) in zip(LIMIT_FIELDS, given.items(), strict=True)
        if value is not None
    }

    async def apply(db: Database):
        limits = LimitService.from_settings(db, settings)
        try:
            if values:
                await limits.set_limits(project, key, values)
            return await limits.effective(project, key)
        finally:
            await limits.close()

    project_limits, key_limits = _with_db(settings, apply)
    table = Table("limit", "project", *(["key"] if key else []))
    for field in LIMIT_FIELDS:
        shown = [getattr(project_limits, field), *([getattr(key_limits, field)] if key else [])]
        table.add_row(field, *(f"{value:,}" if value else "no limit" for value in shown))
    console.print(table)


@app.command()
def usage(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Project id or name (default: all).")] = None,
    days: Annotated[int, typer.Option(min=1, help="Days to show, today included.")] = 30,
) -> None:
    """Model calls and tokens per day (UTC) and model: chat and legacy completions, embeddings, runs (a call per
    round of a run)."""
    from assistd.services.usage import UsageService

    rows = _with_db(_prepare(), lambda db: UsageService(db, None).daily(project, days))
    table = Table("day", "model", "calls", "prompt tokens", "cached tokens", "completion tokens", "total tokens")
    for row in rows:
        total = row.prompt_tokens + row.completion_tokens
        numbers = (row.requests, row.prompt_tokens, row.cached_tokens, row.completion_tokens, total)
        table.add_row(row.day, row.model, *(f"{number:,}" for number in numbers))
    console.print(table)


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or name.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
) -> None:
    """Create an API key; prints the key once (store it now, it cannot be shown again)."""
    created = _with_projects(_prepare(), lambda projects: projects.create_key(project, name))
    print(created.secret)


@keys_app.command("list")
def keys_list(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Project id or name.")] = None,
) -> None:
    """List API keys (redacted)."""
    rows = _with_projects(_prepare(), lambda projects: projects.list_keys(project))
    table = Table("id", "project", "name", "key", "created", "revoked")
    for key in rows:
        table.add_row(
            key.id, key.project_id, key.name or "", key.redacted, _when(key.created_at), _when(key.revoked_at)
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    key = _with_projects(_prepare(), lambda projects: projects.revoke_key(key_id))
    console.print(f"revoked {key.id}")


def _files_under(paths: list[Path]) -> list[Path]:
    """The files named, and the readable-type files inside the directories named, in a stable order."""
    from assistd.retrieval.parsing import SUPPORTED_EXTENSIONS

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS))
        elif path.is_file():
            found.append(path)
        else:
            err_console.print(f"[red]error:[/red] {path} does not exist")
            raise typer.Exit(2)
    return found


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files, or directories to read recursively.")],
    vector_store: Annotated[str, typer.Option("--vector-store", help="Vector store id or name (made if new).")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project id or name (default: the only one).")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Tokens per chunk (100-4096; default 800).")] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by neighbouring chunks (default 400).")
    ] = None,
) -> None:
    """Upload files into a vector store and ingest them now, with progress over files and chunks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from assistd.runtime.ingestion import Ingestor
    from assistd.runtime.local_ingest import LocalIngest
    from assistd.schemas.common import StaticChunking
    from assistd.services.files import FileService
    from assistd.services.limits import LimitService
    from assistd.store.blobs import open_blob_store

    settings = _prepare()
    files = _files_under(paths)
    chunking = None
    if chunk_size is not None or chunk_overlap is not None:
        try:
            chunking = StaticChunking(
                max_chunk_size_tokens=chunk_size or 800,
                chunk_overlap_tokens=chunk_overlap if chunk_overlap is not None else min(400, (chunk_size or 800) // 2),
            )
        except ValidationError as exc:
            err_console.print(f"[red]invalid chunking:[/red] {exc.errors()[0]['msg']}")
            raise typer.Exit(2) from None

    async def run() -> int:
        registry = _load_models(settings)
        db = Database.from_settings(settings)
        blobs = open_blob_store(settings, db)
        ingestor = Ingestor.from_settings(settings, db, blobs, registry.embedding(settings.embedding_model))
        uploads = FileService(db, blobs, settings.max_upload_bytes, LimitService.from_settings(db, settings))
        local = LocalIngest(db, uploads, ingestor)
        failures = 0
        try:
            principal = await ProjectService(db).principal_for(project)
            store = await local.store(principal, vector_store)
            console.print(f"vector store {store.id} ({store.name or 'unnamed'})")
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as bars:
                overall = bars.add_task("files", total=len(files))
                chunks = bars.add_task("chunks", total=None)
                for path in files:
                    bars.reset(chunks, total=None, description=f"chunks of {path.name}")
                    done = await local.ingest(
                        principal,
                        store.id,
                        path,
                        chunking,
                        lambda finished, total: bars.update(chunks, completed=finished, total=total),
                    )
                    if done is None or done.status != FileStatus.COMPLETED:
                        failures += 1
                        reason = done.last_error["message"] if done and done.last_error else "removed meanwhile"
                        bars.console.print(f"[red]failed[/red] {path}: {reason}")
                    bars.advance(overall)
        except AssistdError as exc:
            err_console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(1) from None
        finally:
            await db.dispose()
            await registry.close()
        console.print(f"{len(files) - failures} of {len(files)} files ingested into {store.id}")
        return failures

    if asyncio.run(run()):
        raise typer.Exit(1)


@apps_app.command("install")
def apps_install(
    preset: Annotated[str, typer.Argument(help="customer-service, summarizer or translator.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project id or name (default: the only one).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model id (default: the bundled local model).")] = None,
    name: Annotated[str | None, typer.Option(help="The assistant's name (default: the preset's).")] = None,
    vector_store: Annotated[
        str | None,
        typer.Option("--vector-store", help="customer-service: its knowledge base, by id or name (made if new)."),
    ] = None,
) -> None:
    """Create a configured assistant from a preset; prints its id."""
    from assistd.apps.presets import PRESETS
    from assistd.engines.registry import DEFAULT_TEXT_MODEL
    from assistd.schemas.assistants import AssistantCreate
    from assistd.services.assistants import AssistantService
    from assistd.services.vector_stores import find_or_create_store

    chosen = PRESETS.get(preset)
    if chosen is None:
        err_console.print(f"[red]error:[/red] no preset '{preset}'; choose one of {', '.join(PRESETS)}")
        raise typer.Exit(2)
    settings = _prepare()

    async def run() -> str:
        db = Database.from_settings(settings)
        try:
            principal = await ProjectService(db).principal_for(project)
            body = chosen.assistant_body(model or DEFAULT_TEXT_MODEL, name)
            if chosen.needs_vector_store:
                async with db.write() as session:
                    store = await find_or_create_store(session, principal.project_id, vector_store or f"{chosen.name}")
                body["tool_resources"] = {"file_search": {"vector_store_ids": [store.id]}}
            created = await AssistantService(db, wake=lambda: None).create(principal, AssistantCreate(**body))
            return created["id"]
        except AssistdError as exc:
            err_console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(1) from None
        finally:
            await db.dispose()

    print(asyncio.run(run()))


@apps_app.command("list")
def apps_list() -> None:
    """List the presets that `assistd apps install` knows."""
    from assistd.apps.presets import PRESETS

    table = Table("preset", "what it does")
    for preset in PRESETS.values():
        table.add_row(preset.name, preset.description)
    console.print(table)


BaseUrl = Annotated[
    str | None,
    typer.Option("--base-url", envvar="OPENAI_BASE_URL", help="The server's API URL, e.g. http://127.0.0.1:8000/v1."),
]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="OPENAI_API_KEY", help="An API key of the project.")]
ModelOption = Annotated[str | None, typer.Option(help="Use (or install) the preset on this model.")]


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        err_console.print(f"[red]error:[/red] {source} does not exist")
        raise typer.Exit(2)
    from assistd.retrieval.parsing import InvalidFile, UnsupportedFile, extract_text

    try:
        return extract_text(path.name, path.read_bytes())
    except (UnsupportedFile, InvalidFile) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _client_call(action: Callable[[], None]) -> None:
    """Run a client command; API and connection errors end it with a message and status 1."""
    import openai

    try:
        action()
    except openai.APIConnectionError as exc:
        err_console.print(f"[red]error:[/red] cannot reach the server: {exc}")
        raise typer.Exit(1) from None
    except (openai.APIStatusError, RuntimeError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command()
def summarize(
    source: Annotated[str, typer.Argument(help="A file to summarise, or - for standard input.")],
    style: Annotated[str, typer.Option(help="paragraph, bullets, tldr or key-points (JSON).")] = "paragraph",
    words: Annotated[int | None, typer.Option(help="Target length in words.")] = None,
    model: ModelOption = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Summarise a document with the summarizer preset of a running server (streams the summary)."""
    from assistd.apps import client as clients
    from assistd.apps.presets import SUMMARY_STYLES, summary_run_options

    if style not in SUMMARY_STYLES:
        err_console.print(f"[red]error:[/red] --style must be one of {', '.join(SUMMARY_STYLES)}")
        raise typer.Exit(2)
    text = _read(source)

    def run() -> None:
        sdk = clients.connect(base_url, api_key)
        assistant = clients.installed(sdk, "summarizer", model)
        thread = sdk.beta.threads.create(messages=[{"role": "user", "content": text}])
        options = summary_run_options(style, words)
        if style == "key-points":  # JSON is printed whole, indented, once it is complete
            message = clients.ask(sdk, thread.id, assistant, lambda _: None, **options)
            _write(clients.pretty_json(message.content[0].text.value) + "\n")
        else:
            clients.ask(sdk, thread.id, assistant, _write, **options)
            _write("\n")

    _client_call(run)


@app.command()
def translate(
    source: Annotated[str, typer.Argument(help="A file to translate, or - for standard input.")],
    to: Annotated[str, typer.Option("--to", help="Target language: a code (fr, pt-BR) or a name.")],
    glossary: Annotated[Path | None, typer.Option(help='JSON object of fixed terms, e.g. {"lamp": "lampe"}.')] = None,
    model: ModelOption = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Translate a document with the translator preset of a running server (streams the translation)."""
    import json

    from assistd.apps import client as clients
    from assistd.apps.presets import translation_run_options

    text = _read(source)
    terms = None
    if glossary is not None:
        try:
            terms = json.loads(glossary.read_text())
        except (OSError, ValueError) as exc:
            err_console.print(f"[red]error:[/red] cannot read the glossary: {exc}")
            raise typer.Exit(2) from None

    def run() -> None:
        sdk = clients.connect(base_url, api_key)
        assistant = clients.installed(sdk, "translator", model)
        thread = sdk.beta.threads.create(messages=[{"role": "user", "content": text}])
        clients.ask(sdk, thread.id, assistant, _write, **translation_run_options(to, terms))
        if not text.endswith("\n"):
            _write("\n")

    _client_call(run)


@app.command()
def chat(
    assistant: Annotated[
        str | None, typer.Option(help="Assistant id (default: the newest customer-service install).")
    ] = None,
    model: ModelOption = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Talk with an assistant of a running server: one thread, answers streamed, citations listed."""
    from assistd.apps import client as clients

    def run() -> None:
        sdk = clients.connect(base_url, api_key)
        assistant_id = assistant or clients.installed(sdk, "customer-service", model)
        thread = sdk.beta.threads.create()
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                _write("you> ")
            line = sys.stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            sdk.beta.threads.messages.create(thread.id, role="user", content=line.strip())
            _write("assistant> ")
            message = clients.ask(sdk, thread.id, assistant_id, _write)
            _write("\n")
            for citation in clients.citations(sdk, message):
                _write(f"  {citation}\n")

    _client_call(run)
