"""The limit of active runs (queued, in progress, waiting for tool outputs or cancelling) of a project and a key.

A create first holds a provisional place, counted in this process and, while other creates of its subject are
under way here, against a read of the store, so that a storm of creates over the limit is refused at once
instead of queueing behind the store's write lock; inside its transaction the active runs are then counted
exactly.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator

from sqlalchemy import func, select, text

from assistd.lifecycle import ACTIVE_RUN
from assistd.services.buckets import MAX_CACHED_SUBJECTS
from assistd.services.limit_settings import LimitSettings, Subject, subjects_of
from assistd.services.principal import Principal
from assistd.services.refusals import run_limit_refusal
from assistd.store import tables
from assistd.store.database import Database

FULL_MEMO_SECONDS = 0.25  # a subject found at its run limit is refused without a count for this long


class ActiveRunLimit:
    """Places among the active runs while runs are created, and the exact count when one is added."""

    def __init__(self, db: Database, settings: LimitSettings) -> None:
        self.db = db
        self.settings = settings
        self._full_until: dict[str, float] = {}  # subject id -> until when it is refused at once, after a refusal
        self._creating: collections.Counter[str] = collections.Counter()  # runs this process is creating, by subject

    @contextlib.asynccontextmanager
    async def place(self, principal: Principal) -> AsyncIterator[None]:
        """Hold a provisional place among the project's and the key's active runs while one is created (enter
        before its transaction, leave after it ends). Refused at once while this process is already creating as
        many as the limit, or the subject was found at its limit less than FULL_MEMO_SECONDS ago; else, when
        other creates of the subject are under way here, after a count of its active runs with a read (no
        lock), made by at most `limit` creates at a time. `check`, inside the transaction, counts exactly: a
        create alone needs no count before it."""
        held = await self._limited(principal)
        for subject in held:
            self._refuse_if_full(subject, self._creating[subject.id])
        for subject in held:  # no await since the checks: the places taken are the ones checked
            self._creating[subject.id] += 1
        try:
            crowded = [subject for subject in held if self._creating[subject.id] > 1]
            if crowded:
                await self._count_places(crowded)
            yield
        finally:
            for subject in held:
                self._creating[subject.id] -= 1
                if not self._creating[subject.id]:
                    del self._creating[subject.id]

    async def _limited(self, principal: Principal) -> list[Subject]:
        """The caller's project and key, those of them with a limit of active runs."""
        subjects = subjects_of(principal, await self.settings.limits_for(principal))
        return [subject for subject in subjects if subject.limits.active_runs]

    async def _count_places(self, held: list[Subject]) -> None:
        """Refuse the place when a read finds a subject's active runs at its limit."""
        async with self.db.read() as session:
            for subject in held:
                count = await _count_active(session, subject)
                if count >= subject.limits.active_runs:
                    self._remember_full(subject)
                self._refuse_if_full(subject, count)

    def _refuse_if_full(self, subject: Subject, active: int) -> None:
        """Refuse a new run when `active` runs (or places) reach the limit, or the subject was recently full."""
        limit = subject.limits.active_runs
        if active < limit and self._full_until.get(subject.id, 0.0) <= time.monotonic():
            return
        raise run_limit_refusal(
            f"This {subject.who} has reached its limit of {limit} runs queued or in progress; "
            "try again when one of them has finished.",
            limit,
        )

    def _remember_full(self, subject: Subject) -> None:
        if len(self._full_until) >= MAX_CACHED_SUBJECTS:
            self._full_until.clear()
        self._full_until[subject.id] = time.monotonic() + FULL_MEMO_SECONDS

    async def check(self, session, principal: Principal) -> None:
        """Refuse a new run when the project or the key has its limit of runs queued or running already, counted
        exactly inside the transaction that adds the run: on PostgreSQL it then holds a lock on the project until
        the transaction ends, so concurrent creates count each other (SQLite's writes are serial anyway)."""
        limited = await self._limited(principal)
        if limited and session.bind.dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:project))"), {"project": principal.project_id}
            )
        for subject in limited:
            count = await _count_active(session, subject)
            if count >= subject.limits.active_runs:
                self._remember_full(subject)
                raise run_limit_refusal(
                    f"This {subject.who} has {count} runs queued or in progress, its limit; "
                    "try again when one of them has finished.",
                    subject.limits.active_runs,
                )


async def _count_active(session, subject: Subject) -> int:
    column = tables.Run.project_id if subject.who == "project" else tables.Run.api_key_id
    query = select(func.count()).select_from(tables.Run).where(column == subject.id, tables.Run.status.in_(ACTIVE_RUN))
    return int(await session.scalar(query) or 0)
