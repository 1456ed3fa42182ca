"""Usage: the tokens of every generation, recorded per project, key and model, and read back per day.

A chat or legacy completion and an embedding request write one record when they are done; a run writes one
per model round (its reply, each round of tool calls), in the transaction that closes that round's step. The
tokens are also taken from the project's and key's token buckets (services/limits.py) and counted in the
metrics.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from assistd import metrics
from assistd.clock import now
from assistd.engines.base import Usage
from assistd.errors import NotFound
from assistd.services.limits import LimitService
from assistd.services.principal import Principal
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import ProjectRepository

DAY_SECONDS = 86_400


def usage_record(
    principal: Principal, kind: str, model: str, object_id: str | None, usage: Usage
) -> tables.UsageRecord:
    """The row for one generation (added by the caller, in its own transaction)."""
    return tables.UsageRecord(
        project_id=principal.project_id,
        api_key_id=principal.key_id or None,
        created_at=now(),
        kind=kind,
        model=model,
        object_id=object_id,
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        completion_tokens=usage.completion_tokens,
    )


@dataclass(frozen=True)
class DailyUsage:
    day: str  # YYYY-MM-DD, UTC
    model: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class UsageService:
    def __init__(self, db: Database, limits: LimitService | None) -> None:
        self.db = db
        self.limits = limits

    async def record(
        self, principal: Principal, kind: str, model: str, object_id: str | None, usage: Usage | None
    ) -> None:
        """Write the record of a finished generation, then charge its tokens."""
        if usage is None:
            return
        async with self.db.write() as session:
            session.add(usage_record(principal, kind, model, object_id, usage))
        await self.charge(principal, kind, model, usage)

    async def charge(self, principal: Principal, kind: str, model: str, usage: Usage) -> None:
        """Take the tokens from the buckets and count them (the record was written by the caller)."""
        metrics.count_tokens(kind, model, usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens)
        if self.limits is not None:
            await self.limits.spend_tokens(principal, usage.total_tokens)

    async def daily(self, project: str | None, days: int) -> list[DailyUsage]:
        """Requests and tokens per UTC day and model over the last `days` days, oldest first; every project's
        when `project` (an id or name) is None."""
        since = (now() // DAY_SECONDS - days + 1) * DAY_SECONDS
        async with self.db.read() as session:
            where = [tables.UsageRecord.created_at >= since]
            if project is not None:
                found = await ProjectRepository(session).find(project)
                if found is None:
                    raise NotFound(f"No project found with id or name '{project}'.")
                where.append(tables.UsageRecord.project_id == found.id)
            bucket = tables.UsageRecord.created_at - tables.UsageRecord.created_at % DAY_SECONDS
            rows = await session.execute(
                select(
                    bucket,
                    tables.UsageRecord.model,
                    func.count(),
                    func.sum(tables.UsageRecord.prompt_tokens),
                    func.sum(tables.UsageRecord.cached_tokens),
                    func.sum(tables.UsageRecord.completion_tokens),
                )
                .where(*where)
                .group_by(bucket, tables.UsageRecord.model)
                .order_by(bucket, tables.UsageRecord.model)
            )
            return [
                DailyUsage(
                    dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat(),
                    model,
                    count,
                    int(prompt),
                    int(cached),
                    int(completion),
                )
                for start, model, count, prompt, cached, completion in rows.all()
            ]
