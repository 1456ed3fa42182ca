"""Quotas and rate limits per project and per key, answered as OpenAI answers them.

Four limits: requests per minute, tokens per minute (prompt + completion), active runs (queued, in progress,
waiting for tool outputs or cancelling) and stored bytes (uploaded files). A project's limits come from its
row in `limits`, else from the server's defaults (`ASSISTD_LIMIT_*`); a key may have stricter limits of its
own. 0 means no limit.

Rates are token buckets holding a minute's allowance and refilling continuously. A request takes one from
the request buckets of its project and key; a generating request needs tokens left in the token buckets, and
its tokens are taken when it is done (so the bucket may go below zero, and the next requests wait until it
has refilled). Over a limit: 429 `rate_limit_exceeded` (stored bytes: `insufficient_quota`) with `retry-after`,
`retry-after-ms` and the `x-ratelimit-*` headers the SDKs read; the headers come with every answer too.

The buckets live in Redis when it is configured (shared by every process), in this process otherwise.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select, text

from assistd import metrics
from assistd.config import Settings
from assistd.errors import NotFound, RateLimited
from assistd.lifecycle import ACTIVE_RUN
from assistd.services.principal import Principal
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import ProjectRepository

log = logging.getLogger(__name__)

MAX_CACHED_SUBJECTS = 10_000
FULL_MEMO_SECONDS = 0.25  # a subject found at its run limit is refused without a count for this long


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


@dataclass(frozen=True)
class Level:
    """A bucket after a take: whether it allowed it, what is left, and when it will be full again."""

    allowed: bool
    limit: int
    remaining: float
    reset_seconds: float
    retry_after_seconds: float


class Buckets(Protocol):
    """Token buckets by name, each holding `per_minute` and refilling at `per_minute` a minute."""

    async def take(self, name: str, per_minute: int, need: float, cost: float) -> Level:
        """Take `cost` when at least `need` is left; the level either way."""
        ...


def level_of(allowed: bool, level: float, per_minute: int, need: float) -> Level:
    """The answer for a bucket left at `level` by a take that was (or was not) `allowed`."""
    rate = per_minute / 60.0
    retry = 0.0 if allowed else (need - level) / rate
    return Level(allowed, per_minute, max(level, 0.0), max(per_minute - level, 0.0) / rate, retry)


class MemoryBuckets:
    """Buckets of this process."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._levels: dict[str, tuple[float, float]] = {}  # name -> (level, when)

    async def take(self, name: str, per_minute: int, need: float, cost: float) -> Level:
        now = self.clock()
        level, when = self._levels.get(name, (float(per_minute), now))
        level = min(float(per_minute), level + (now - when) * per_minute / 60.0)
        allowed = level >= need
        if allowed:
            level -= cost
        if len(self._levels) >= MAX_CACHED_SUBJECTS and name not in self._levels:
            self._levels = {key: value for key, value in self._levels.items() if value[0] < per_minute}
        self._levels[name] = (level, now)
        return level_of(allowed, level, per_minute, need)


# KEYS[1]: the bucket; ARGV: per_minute, need, cost. Redis's clock, so every process agrees on the time.
_TAKE = """
local per_minute = tonumber(ARGV[1])
local rate = per_minute / 60.0
local need, cost = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or per_minute
local at = tonumber(state[2]) or now
level = math.min(per_minute, level + (now - at) * rate)
local allowed = 0
if level >= need then
  level = level - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((per_minute - level) / rate) + 1)
return {allowed, tostring(level)}
"""


class RedisBuckets:
    """Buckets in Redis, shared by every API process and worker. When Redis fails, requests are let through
    (one warning a minute): the limits protect the server, they must not take it down."""

    PREFIX = "assistd:bucket:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._take = self._redis.register_script(_TAKE)
        self._warned_at = 0.0

    async def take(self, name: str, per_minute: int, need: float, cost: float) -> Level:
        try:
            args = [per_minute, need if math.isfinite(need) else -1e300, cost]
            allowed, level = await self._take(keys=[self.PREFIX + name], args=args)
        except Exception as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limits not applied: Redis failed (%s)", type(exc).__name__)
            return Level(True, per_minute, per_minute, 0.0, 0.0)
        return level_of(bool(allowed), float(level), per_minute, need)

    async def close(self) -> None:
        await self._redis.aclose()


def duration(seconds: float) -> str:
    """OpenAI's form of a reset time: `20ms`, `1.5s`, `6m0s`."""
    millis = math.ceil(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis / 1000, 60)
    if minutes:
        return f"{int(minutes)}m{rest:.0f}s"
    return f"{rest:.3g}s"


def _headers(kind: str, level: Level) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(level.limit),
        f"x-ratelimit-remaining-{kind}": str(math.floor(level.remaining)),
        f"x-ratelimit-reset-{kind}": duration(level.reset_seconds),
    }


def _refusal(message: str, level: Level, kind: str) -> RateLimited:
    """A 429 the SDKs retry after `retry-after` (they wait up to a minute)."""
    metrics.RATE_LIMITED.labels(kind).inc()
    wait = max(level.retry_after_seconds, 0.001)
    headers = {
        **_headers(kind, level),
        "retry-after": str(math.ceil(wait)),
        "retry-after-ms": str(math.ceil(wait * 1000)),
    }
    return RateLimited(message, code="rate_limit_exceeded", headers=headers)


class LimitService:
    """Reads the limits (remembered for `cache_seconds`), keeps the buckets, and refuses what is over them."""

    def __init__(self, db: Database, defaults: Limits, buckets: Buckets, cache_seconds: float = 2.0) -> None:
        self.db = db
        self.defaults = defaults
        self.buckets = buckets
        self.cache_seconds = cache_seconds
        self._cached: dict[str, tuple[tuple[Limits, Limits], float]] = {}
        self._full: dict[str, tuple[float, int, str]] = {}  # subject -> (until, its run limit, who) after a refusal
        self._creating: collections.Counter[str] = collections.Counter()  # runs this process is creating, by subject

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> LimitService:
        """Limits with the server's defaults, their buckets in Redis when it is configured."""
        buckets = RedisBuckets(settings.redis_url) if settings.redis_url else MemoryBuckets()
        return cls(db, Limits.from_settings(settings), buckets, settings.auth_cache_seconds)

    async def close(self) -> None:
        if isinstance(self.buckets, RedisBuckets):
            await self.buckets.close()

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

    def _subjects(self, principal: Principal, limits: tuple[Limits, Limits]):
        project, key = limits
        return ((principal.project_id, project, "project"), (principal.key_id, key, "API key"))

    async def admit(self, principal: Principal) -> dict[str, str]:
        """Take one request from the project's and key's buckets; the headers to answer with. Raises
        RateLimited when either is empty."""
        return await self._take(principal, "requests", "requests_per_minute", need=1, cost=1)

    async def admit_tokens(self, principal: Principal) -> dict[str, str]:
        """Refuse a generation when the project or key has no tokens left this minute."""
        return await self._take(principal, "tokens", "tokens_per_minute", need=1, cost=0)

    async def _take(self, principal: Principal, kind: str, field: str, need: float, cost: float) -> dict[str, str]:
        tightest: Level | None = None
        for subject, limits, who in self._subjects(principal, await self.limits_for(principal)):
            per_minute = getattr(limits, field)
            if not per_minute:
                continue
            level = await self.buckets.take(f"{kind}:{subject}", per_minute, need, cost)
            if not level.allowed:
                raise _refusal(
                    f"Rate limit reached for {kind} per minute on this {who}: limit {per_minute}. "
                    f"Please try again in {duration(level.retry_after_seconds)}.",
                    level,
                    kind,
                )
            if tightest is None or level.remaining < tightest.remaining:
                tightest = level
        return _headers(kind, tightest) if tightest is not None else {}

    async def spend_tokens(self, principal: Principal, tokens: int) -> None:
        """Take a finished generation's tokens from the buckets (they may go below zero)."""
        if tokens <= 0:
            return
        for subject, limits, _who in self._subjects(principal, await self.limits_for(principal)):
            if limits.tokens_per_minute:
                await self.buckets.take(f"tokens:{subject}", limits.tokens_per_minute, -math.inf, tokens)

    @contextlib.asynccontextmanager
    async def run_place(self, principal: Principal) -> AsyncIterator[None]:
        """Hold a provisional place among the project's and the key's active runs while one is created (enter
        before its transaction, leave after it ends), so that a storm of creates over the limit is refused here
        instead of queueing behind the store. Refused at once while this process is already creating as many as
        the limit, or the subject was found at its limit less than FULL_MEMO_SECONDS ago; else after a count of
        its active runs with a read (no lock), made by at most `limit` creates at a time. `check_active_runs`,
        inside the transaction, counts exactly."""
        subjects = self._subjects(principal, await self.limits_for(principal))
        held = [(subject, limits.active_runs, who) for subject, limits, who in subjects if limits.active_runs]
        for subject, limit, who in held:
            self._refuse_if_full(subject, limit, who, self._creating[subject])
        for subject, _limit, _who in held:  # no await since the checks: the places taken are the ones checked
            self._creating[subject] += 1
        try:
            if held:
                async with self.db.read() as session:
                    for subject, limit, who in held:
                        count = await self._count_active(session, subject, who)
                        if count >= limit:
                            self._remember_full(subject, limit, who)
                        self._refuse_if_full(subject, limit, who, count)
            yield
        finally:
            for subject, _limit, _who in held:
                self._creating[subject] -= 1
                if not self._creating[subject]:
                    del self._creating[subject]

    def _refuse_if_full(self, subject: str, limit: int, who: str, active: int) -> None:
        """Refuse a new run when `active` runs (or places) reach `limit`, or the subject was recently full."""
        full = self._full.get(subject)
        if active < limit and (full is None or full[0] <= time.monotonic()):
            return
        raise _refusal(
            f"This {who} has reached its limit of {limit} runs queued or in progress; "
            "try again when one of them has finished.",
            Level(False, limit, 0, 1.0, 1.0),
            "runs",
        )

    def _remember_full(self, subject: str, limit: int, who: str) -> None:
        if len(self._full) >= MAX_CACHED_SUBJECTS:
            self._full.clear()
        self._full[subject] = (time.monotonic() + FULL_MEMO_SECONDS, limit, who)

    @staticmethod
    async def _count_active(session, subject: str, who: str) -> int:
        column = tables.Run.project_id if who == "project" else tables.Run.api_key_id
        query = select(func.count()).select_from(tables.Run).where(column == subject, tables.Run.status.in_(ACTIVE_RUN))
        return int(await session.scalar(query) or 0)

    async def check_active_runs(self, session, principal: Principal) -> None:
        """Refuse a new run when the project or the key has its limit of runs queued or running already, counted
        exactly inside the transaction that adds the run: on PostgreSQL it then holds a lock on the project until
        the transaction ends, so concurrent creates count each other (SQLite's writes are serial anyway)."""
        project, key = await self.limits_for(principal)
        if (project.active_runs or key.active_runs) and session.bind.dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:project))"), {"project": principal.project_id}
            )
        for subject, limits, who in self._subjects(principal, (project, key)):
            if not limits.active_runs:
                continue
            count = await self._count_active(session, subject, who)
            if count >= limits.active_runs:
                self._remember_full(subject, limits.active_runs, who)
                raise _refusal(
                    f"This {who} has {count} runs queued or in progress, its limit; "
                    "try again when one of them has finished.",
                    Level(False, limits.active_runs, 0, 1.0, 1.0),
                    "runs",
                )

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
        async with self.db.write() as session:
            found = await ProjectRepository(session).find(project)
            if found is None:
                raise NotFound(f"No project found with id or name '{project}'.")
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
        """What applies to a project (and one of its keys): for the CLI."""
        async with self.db.read() as session:
            found = await ProjectRepository(session).find(project)
            if found is None:
                raise NotFound(f"No project found with id or name '{project}'.")
        self._cached.pop(key_id or "", None)
        return await self.limits_for(Principal(project_id=found.id, key_id=key_id or ""))
