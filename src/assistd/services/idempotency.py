"""`Idempotency-Key` on creates: a retried POST gets the object the first one made, not a second object.

The lookup and the remembering happen in the create's own write transaction, so two requests with one key
cannot both create. A key already used for another kind of object is a 400.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.errors import InvalidRequest
from assistd.store.repositories import IdempotencyRepository, ScopedRepository


async def replayed(session: AsyncSession, key: str | None, repository: ScopedRepository[Any]) -> Any | None:
    """The row an earlier request with `key` created, or None when the key is new (or absent)."""
    if key is None:
        return None
    object_id = await IdempotencyRepository(session, repository.project_id).find(key)
    if object_id is None:
        return None
    row = await repository.get(object_id)
    if row is None:
        raise InvalidRequest(
            "This Idempotency-Key was already used for a different request.", code="idempotency_key_reused"
        )
    return row


async def remember(session: AsyncSession, key: str | None, project_id: str, row: Any) -> None:
    if key is not None:
        await IdempotencyRepository(session, project_id).remember(key, row.id, row.created_at)
