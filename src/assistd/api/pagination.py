"""List query parameters → PageRequest, and Page → OpenAI's list envelope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import Query

from assistd import ids
from assistd.errors import InvalidRequest
from assistd.protocol import wire
from assistd.store.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, PageRequest


def page_params(
    kind: str, default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> Callable[..., Awaitable[PageRequest]]:
    """A dependency that reads limit/order/after/before for a list of `kind` objects."""

    async def dependency(  # async: FastAPI runs a plain `def` dependency in a worker thread
        limit: int = Query(default_limit, ge=1, le=max_limit, description=f"Number of objects, 1 to {max_limit}."),
        order: Literal["asc", "desc"] = Query("desc", description="Sort by created_at: asc or desc."),
        after: str | None = Query(None, description="Cursor: an object id; list the objects after it."),
        before: str | None = Query(None, description="Cursor: an object id; list the objects before it."),
    ) -> PageRequest:
        for name, cursor in (("after", after), ("before", before)):
            if cursor is not None and not ids.is_valid(kind, cursor):
                raise InvalidRequest(
                    f"Invalid '{name}': expected an id of a {kind.replace('_', ' ')}.", param=name, code="invalid_value"
                )
        return PageRequest(limit=limit, order=order, after=after, before=before)

    return dependency


def list_envelope(page: Page[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI's list object for a page of wire objects."""
    return wire.list_page(page.items, page.has_more)
