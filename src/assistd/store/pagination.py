"""Cursor pagination over time-sortable ids: `after`/`before` become an index range, never an OFFSET.

A page's statement depends only on the kind of request (`PageRequest.shape`); the cursors and the limit are bound
parameters (`fetch_page` gives their values), so a repository builds each kind of page statement once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Integer, Select, bindparam
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Shape = tuple[Literal["asc", "desc"], bool, bool]
"""The order of a list, and whether it has an `after` and a `before` cursor."""


@dataclass(frozen=True)
class PageRequest:
    """A validated list request: `order` is the list's order, cursors are ids of that kind."""

    limit: int = DEFAULT_LIMIT
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None

    @property
    def shape(self) -> Shape:
        return self.order, self.after is not None, self.before is not None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page in list order; `has_more` says whether more items lie beyond it in the direction of travel."""

    items: list[T]
    has_more: bool


def _walks_backward(shape: Shape) -> bool:
    """`before` alone walks backward from its cursor; with `after` too, `after` leads."""
    _, after, before = shape
    return before and not after


def paged(stmt: Select[Any], id_column: InstrumentedAttribute[Any], shape: Shape) -> Select[Any]:
    """`stmt` (a select of columns, already scoped and filtered) for one page of a request of `shape`.

    `after` walks forward in list order from the cursor; `before` walks backward from it (`fetch_page` puts the
    page back in list order, the items closest to the cursor last). One row more than the page is read: it tells
    whether there are more.
    """
    order, after, before = shape
    ascending = order == "asc"
    if after:
        stmt = stmt.where(id_column > bindparam("page_after") if ascending else id_column < bindparam("page_after"))
    if before:
        stmt = stmt.where(id_column < bindparam("page_before") if ascending else id_column > bindparam("page_before"))
    scan_ascending = ascending != _walks_backward(shape)
    return stmt.order_by(id_column.asc() if scan_ascending else id_column.desc()).limit(
        bindparam("page_rows", type_=Integer)
    )


async def fetch_page(
    session: AsyncSession, stmt: Select[Any], request: PageRequest, parameters: dict[str, Any] | None = None
) -> Page[Any]:
    """Run `stmt` (made by `paged` for `request.shape`) with `request`'s cursors and the `parameters` of its
    filters: the rows of one page."""
    values = {"page_after": request.after, "page_before": request.before, "page_rows": request.limit + 1}
    rows = list((await session.execute(stmt, {**values, **(parameters or {})})).all())
    has_more = len(rows) > request.limit
    rows = rows[: request.limit]
    if _walks_backward(request.shape):
        rows.reverse()
    return Page(items=rows, has_more=has_more)
