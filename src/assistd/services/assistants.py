"""Assistants: create, list, retrieve, modify, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assistd.apps.presets import APP_KEY
from assistd.apps.strategies import STRATEGIES
from assistd.clock import now
from assistd.errors import InvalidRequest, NotFound
from assistd.ids import new_id
from assistd.protocol import wire
from assistd.schemas.assistants import AssistantCreate, AssistantUpdate
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.principal import Principal
from assistd.services.serialize import to_stored
from assistd.services.tool_resources import resolve_tool_resources
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import AssistantRepository


def _check_app(app: str | None) -> None:
    """An assistant may behave as one of the app presets (assistd extension field `app`)."""
    if app is not None and app not in STRATEGIES:
        raise InvalidRequest(f"Unknown app '{app}'; the apps are {', '.join(sorted(STRATEGIES))}.", param="app")


def _app_at_creation(body: AssistantCreate) -> str | None:
    """The assistant's app: the `app` field, else (as clients of earlier versions asked for one) a preset named
    by `metadata["assistd_app"]` at creation. Later edits of the metadata change nothing."""
    if "app" in body.model_fields_set:
        return body.app
    legacy = (body.metadata or {}).get(APP_KEY)
    return legacy if legacy in STRATEGIES else None


class AssistantService:
    def __init__(self, db: Database, wake: Callable[[], None]) -> None:
        self.db = db
        self.wake = wake

    async def create(
        self, principal: Principal, body: AssistantCreate, idempotency_key: Idempotency | None = None
    ) -> dict[str, Any]:
        _check_app(body.app)
        row = tables.Assistant(
            id=new_id("assistant"),
            created_at=now(),
            model=body.model,
            name=body.name,
            description=body.description,
            instructions=body.instructions,
            tools=to_stored(body.tools),
            tool_resources=None,
            metadata_=body.metadata or {},
            temperature=body.temperature,
            top_p=body.top_p,
            response_format=to_stored(body.response_format),
            reasoning_effort=body.reasoning_effort,
            response_language=body.response_language,
            app=_app_at_creation(body),
        )
        async with self.db.write() as session:
            assistants = AssistantRepository(session, principal.project_id)
            if (earlier := await replayed(session, idempotency_key, assistants)) is not None:
                return wire.assistant(earlier)
            row.tool_resources = await resolve_tool_resources(session, principal.project_id, body.tool_resources)
            await assistants.add(row)
            await remember(session, idempotency_key, principal.project_id, row)
        self.wake()
        return wire.assistant(row)

    async def list(self, principal: Principal, request: PageRequest) -> Page[dict[str, Any]]:
        async with self.db.read() as session:
            page = await AssistantRepository(session, principal.project_id).page(request)
        return Page([wire.assistant(row) for row in page.items], page.has_more)

    async def retrieve(self, principal: Principal, assistant_id: str) -> dict[str, Any]:
        async with self.db.read() as session:
            row = await AssistantRepository(session, principal.project_id).get(assistant_id)
        if row is None:
            raise NotFound.for_object("assistant", assistant_id)
        return wire.assistant(row)

    async def modify(self, principal: Principal, assistant_id: str, body: AssistantUpdate) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        _check_app(body.app)
        async with self.db.write() as session:
            row = await AssistantRepository(session, principal.project_id).get(assistant_id)
            if row is None:
                raise NotFound.for_object("assistant", assistant_id)
            for field in changes:
                value = getattr(body, field)
                if field == "metadata":
                    row.metadata_ = value or {}
                elif field == "tools":
                    row.tools = to_stored(value) or []
                elif field == "model":
                    row.model = value or row.model
                elif field == "tool_resources":
                    row.tool_resources = await resolve_tool_resources(session, principal.project_id, value)
                else:
                    setattr(row, field, to_stored(value))
        self.wake()
        return wire.assistant(row)

    async def delete(self, principal: Principal, assistant_id: str) -> dict[str, Any]:
        async with self.db.write() as session:
            if not await AssistantRepository(session, principal.project_id).delete(assistant_id):
                raise NotFound.for_object("assistant", assistant_id)
        return wire.deleted(assistant_id, "assistant")
