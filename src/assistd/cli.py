"""The `assistd` command: serve, db upgrade, projects and keys administration."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from assistd.config import Settings
from assistd.errors import AssistdError
from assistd.services.projects import CreatedKey, ProjectService
from assistd.store.database import Database
from assistd.store.migrate import upgrade

app = typer.Typer(help="assistd: a self-hosted OpenAI Assistants API server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")

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
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    return settings


def _with_projects(settings: Settings, action: Callable[[ProjectService], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(settings.resolved_database_url)
        try:
            return await action(ProjectService(db))
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except AssistdError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


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
def serve() -> None:
    """Apply migrations, create a first project and key if there is none, and serve the API."""
    import uvicorn

    from assistd import logs
    from assistd.app import create_app, load_registry
    from assistd.engines.registry import ConfigError

    settings = _prepare()
    logs.configure(settings.log_level)
    try:
        registry = load_registry(settings)
    except ConfigError as exc:
        err_console.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    created = _with_projects(settings, lambda projects: projects.ensure_first_key())
    if created is not None:
        _save_first_key(settings, created)
    uvicorn.run(
        create_app(settings, registry),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


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
