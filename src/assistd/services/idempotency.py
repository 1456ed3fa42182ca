"""`Idempotency-Key` on creates: a retried POST gets the object the first one made, not a second object.

The lookup and the remembering happen in the create's own write transaction, so two requests with one key
cannot both create. A key already used for another kind of object, or for a request with another body (its
fingerprint differs), is a 400: the retry would otherwise silently get an object it did not ask for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.errors import InvalidRequest
from assistd.store.repositories import IdempotencyRepository, ScopedRepository


@dataclass(frozen=True)
class Idempotency:
    """An `Idempotency-Key` and the fingerprint of the request that carried it (None: nothing to compare)."""

    key: str
    fingerprint: str | None = None


def _reused() -> InvalidRequest:
    return InvalidRequest(
        "This Idempotency-Key was already used for a different request.", code="idempotency_key_reused"
    )


async def replayed(session: AsyncSession, key: Idempotency | None, repository: ScopedRepository[Any]) -> Any | None:
    """The row an earlier request with `key` created, or None when the key is new (or absent)."""
    if key is None:
        return None
    remembered = await IdempotencyRepository(session, repository.project_id).find(key.key)
    if remembered is None:
        return None
    if remembered.request_hash and key.fingerprint and remembered.request_hash != key.fingerprint:
        raise _reused()
    row = await repository.get(remembered.object_id)
    if row is None:
        raise _reused()
    return row


async def remember(session: AsyncSession, key: Idempotency | None, project_id: str, row: Any) -> None:
    if key is not None:
        await IdempotencyRepository(session, project_id).remember(key.key, row.id, row.created_at, key.fingerprint)
