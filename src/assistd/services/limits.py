"""Quotas and rate limits per project and per key, answered as OpenAI answers them.

Four limits: requests per minute, tokens per minute (prompt + completion), active runs (queued, in progress,
waiting for tool outputs or cancelling) and stored bytes (uploaded files). What applies to whom is read by
services/limit_settings.py; 0 means no limit.

Rates are token buckets (services/buckets.py) holding a minute's allowance and refilling continuously. A
request takes one from the request buckets of its project and key; a generating request needs tokens left in
the token buckets, and its tokens are taken when it is done (so the bucket may go below zero, and the next
requests wait until it has refilled). Active runs are counted by services/active_runs.py. Over a limit: 429
`rate_limit_exceeded` (stored bytes: `insufficient_quota`) with `retry-after`, `retry-after-ms` and the
`x-ratelimit-*` headers the SDKs read; the headers come with every answer too (services/refusals.py).

The buckets live in Redis when it is configured (shared by every process), in this process otherwise.
"""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager

from sqlalchemy import func, select

from assistd import metrics
from assistd.config import Settings
from assistd.errors import RateLimited
from assistd.services.active_runs import ActiveRunLimit
from assistd.services.buckets import Buckets, Level, MemoryBuckets, RedisBuckets
from assistd.services.limit_settings import Limits, LimitSettings, subjects_of
from assistd.services.principal import Principal
from assistd.services.refusals import duration, rate_headers, refusal
from assistd.store import tables
from assistd.store.database import Database


class LimitService:
    """Reads the limits (remembered for `cache_seconds`), keeps the buckets, and refuses what is over them."""

    def __init__(self, db: Database, defaults: Limits, buckets: Buckets, cache_seconds: float = 2.0) -> None:
        self.buckets = buckets
        self.settings = LimitSettings(db, defaults, cache_seconds)
        self.active_runs = ActiveRunLimit(db, self.settings)

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> LimitService:
        """Limits with the server's defaults, their buckets in Redis when it is configured."""
        buckets = RedisBuckets(settings.redis_url) if settings.redis_url else MemoryBuckets()
        return cls(db, Limits.from_settings(settings), buckets, settings.auth_cache_seconds)

    async def close(self) -> None:
        """Close the buckets' connection to Redis, if they have one."""
        if isinstance(self.buckets, RedisBuckets):
            await self.buckets.close()

    async def limits_for(self, principal: Principal) -> tuple[Limits, Limits]:
        """The project's limits and the key's own (NO_LIMITS when it has none)."""
        return await self.settings.limits_for(principal)

    async def admit(self, principal: Principal) -> dict[str, str]:
        """Take one request from the project's and key's buckets; the headers to answer with. Raises
        RateLimited when either is empty."""
        return await self._take(principal, "requests", "requests_per_minute", need=1, cost=1)

    async def admit_tokens(self, principal: Principal) -> dict[str, str]:
        """Refuse a generation when the project or key has no tokens left this minute."""
        return await self._take(principal, "tokens", "tokens_per_minute", need=1, cost=0)

    async def _take(self, principal: Principal, kind: str, field: str, need: float, cost: float) -> dict[str, str]:
        tightest: Level | None = None
        for subject, limits, who in subjects_of(principal, await self.limits_for(principal)):
            per_minute = getattr(limits, field)
            if not per_minute:
                continue
            level = await self.buckets.take(f"{kind}:{subject}", per_minute, need, cost)
            if not level.allowed:
                raise refusal(
                    f"Rate limit reached for {kind} per minute on this {who}: limit {per_minute}. "
                    f"Please try again in {duration(level.retry_after_seconds)}.",
                    level,
                    kind,
                )
            if tightest is None or level.remaining < tightest.remaining:
                tightest = level
        return rate_headers(kind, tightest) if tightest is not None else {}

    async def spend_tokens(self, principal: Principal, tokens: int) -> None:
        """Take a finished generation's tokens from the buckets (they may go below zero)."""
        if tokens <= 0:
            return
        for subject, limits, _who in subjects_of(principal, await self.limits_for(principal)):
            if limits.tokens_per_minute:
                await self.buckets.take(f"tokens:{subject}", limits.tokens_per_minute, -math.inf, tokens)

    def run_place(self, principal: Principal) -> AbstractAsyncContextManager[None]:
        """A provisional place among the project's and the key's active runs, held while one is created."""
        return self.active_runs.place(principal)

    async def check_active_runs(self, session, principal: Principal) -> None:
        """Refuse a new run when the project or the key has its limit of active runs, counted exactly inside the
        transaction that adds the run."""
        await self.active_runs.check(session, principal)

    async def check_storage(self, session, principal: Principal, adding: int) -> None:
        """Refuse an upload that would take the project's (or key's project's) stored bytes over its limit."""
        project, _key = await self.limits_for(principal)
        if not project.stored_bytes:
            return
        stored = await session.scalar(
            select(func.coalesce(func.sum(tables.File.bytes), 0)).where(tables.File.project_id == principal.project_id)
        )
        if stored + adding > project.stored_bytes:
            metrics.RATE_LIMITED.labels("stored_bytes").inc()
            raise RateLimited(
                f"You exceeded your current quota of stored bytes: {stored} stored, {adding} more asked, "
                f"limit {project.stored_bytes}. Delete files or ask for a larger quota.",
                code="insufficient_quota",
                headers={"x-should-retry": "false"},  # waiting frees nothing: the SDKs stop at once
            )

    async def set_limits(self, project: str, key_id: str | None, values: dict[str, int | None]) -> tables.Limit:
        """Set (an int), clear (None: inherit) or keep (absent) the limits of a project or one of its keys."""
        return await self.settings.set(project, key_id, values)

    async def effective(self, project: str, key_id: str | None) -> tuple[Limits, Limits]:
        """What applies to a project (and one of its keys): for the CLI."""
        return await self.settings.effective(project, key_id)
