"""Cursor pagination over time-sortable ids: `after`/`before` become an index range, never an OFFSET."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class PageRequest:
    """A validated list request: `order` is the list's order, cursors are ids of that kind."""

    limit: int = DEFAULT_LIMIT
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page in list order; `has_more` says whether more items lie beyond it in the direction of travel."""

    items: list[T]
    has_more: bool


async def fetch_page(
    session: AsyncSession, stmt: Select[Any], id_column: InstrumentedAttribute[Any], request: PageRequest
) -> Page[Any]:
    """Run `stmt` (a select of columns, already scoped and filtered) for one page of `request`: its rows.

    `after` walks forward in list order from the cursor; `before` walks backward from it, and the page
    still comes back in list order (the items closest to the cursor last).
    """
    ascending = request.order == "asc"
    if request.after is not None:
        stmt = stmt.where(id_column > request.after if ascending else id_column < request.after)
    if request.before is not None:
        stmt = stmt.where(id_column < request.before if ascending else id_column > request.before)
    walk_backward = request.before is not None and request.after is None
    scan_ascending = ascending != walk_backward
    stmt = stmt.order_by(id_column.asc() if scan_ascending else id_column.desc()).limit(request.limit + 1)
    rows = list((await session.execute(stmt)).all())
    has_more = len(rows) > request.limit
    rows = rows[: request.limit]
    if walk_backward:
        rows.reverse()
    return Page(items=rows, has_more=has_more)
