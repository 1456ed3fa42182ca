"""The limits that apply to a project and to each of its keys: read (and remembered a moment), and set.

A project's limits come from its row in `limits`, else from the server's defaults (`ASSISTD_LIMIT_*`); a key
may have stricter limits of its own. 0 means no limit.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select

from assistd.config import Settings
from assistd.errors import NotFound
from assistd.services.buckets import MAX_CACHED_SUBJECTS
from assistd.services.principal import Principal
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import ProjectRepository


@dataclass(frozen=True)
class Limits:
    """One subject's limits; 0 is no limit."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    active_runs: int = 0
    stored_bytes: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The server's defaults (`ASSISTD_LIMIT_*`)."""
        return cls(
            settings.limit_requests_per_minute,
            settings.limit_tokens_per_minute,
            settings.limit_active_runs,
            settings.limit_stored_bytes,
        )

    def over(self, row: tables.Limit | None) -> Limits:
        """These limits with the ones `row` sets (its NULLs inherit)."""
        if row is None:
            return self
        values = {field: getattr(row, field) for field in LIMIT_FIELDS if getattr(row, field) is not None}
        return dataclasses.replace(self, **values)


LIMIT_FIELDS = tuple(field.name for field in dataclasses.fields(Limits))
NO_LIMITS = Limits()


class Subject(NamedTuple):
    """One of the two a request counts against: its project or its key, with its limits."""

    id: str
    limits: Limits
    who: str  # as messages name it: "project" or "API key"


def subjects_of(principal: Principal, limits: tuple[Limits, Limits]) -> tuple[Subject, Subject]:
    """The caller's project and key with their limits (the pair `LimitSettings.limits_for` answers)."""
    project, key = limits
    return Subject(principal.project_id, project, "project"), Subject(principal.key_id, key, "API key")


class LimitSettings:
    """Reads the limits of a project and key, remembered for `cache_seconds`, and sets them."""

    def __init__(self, db: Database, defaults: Limits, cache_seconds: float) -> None:
        self.db = db
        self.defaults = defaults
        self.cache_seconds = cache_seconds
        self._cached: dict[str, tuple[tuple[Limits, Limits], float]] = {}

    async def limits_for(self, principal: Principal) -> tuple[Limits, Limits]:
        """The project's limits and the key's own (NO_LIMITS when it has none)."""
        cached = self._cached.get(principal.key_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.db.read() as session:
            rows = {
                row.subject_id: row
                for row in await session.scalars(
                    select(tables.Limit).where(tables.Limit.subject_id.in_((principal.project_id, principal.key_id)))
                )
            }
        limits = (self.defaults.over(rows.get(principal.project_id)), NO_LIMITS.over(rows.get(principal.key_id)))
        if self.cache_seconds > 0:
            if len(self._cached) >= MAX_CACHED_SUBJECTS:
                self._cached.clear()
            self._cached[principal.key_id] = (limits, time.monotonic() + self.cache_seconds)
        return limits

    async def set(self, project: str, key_id: str | None, values: dict[str, int | None]) -> tables.Limit:
        """Set (an int), clear (None: inherit) or keep (absent) the limits of a project or one of its keys."""
        async with self.db.write() as session:
            found = await _project(session, project)
            subject = found.id
            if key_id is not None:
                key = await ProjectRepository(session).key(key_id)
                if key is None or key.project_id != found.id:
                    raise NotFound(f"No API key found with id '{key_id}' in project '{project}'.")
                subject = key.id
            row = await session.get(tables.Limit, subject)
            if row is None:
                row = tables.Limit(subject_id=subject, project_id=found.id)
                session.add(row)
            for field, value in values.items():
                setattr(row, field, value)
            await session.flush()
        self._cached.clear()
        return row

    async def effective(self, project: str, key_id: str | None) -> tuple[Limits, Limits]:
        """What applies to a project (and one of its keys), read afresh."""
        async with self.db.read() as session:
            found = await _project(session, project)
        self._cached.pop(key_id or "", None)
        return await self.limits_for(Principal(project_id=found.id, key_id=key_id or ""))


async def _project(session, project: str) -> tables.Project:
    found = await ProjectRepository(session).find(project)
    if found is None:
        raise NotFound(f"No project found with id or name '{project}'.")
    return found
