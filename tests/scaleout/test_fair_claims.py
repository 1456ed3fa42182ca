"""Fair claims on PostgreSQL: workers claiming at the same moment each get a different job (`FOR UPDATE SKIP
LOCKED`, guarded UPDATE), and another project's job is among the first round even behind a backlog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from assistd.store.database import Database
from assistd.store.migrate import upgrade
from assistd.store.queue import RunQueue
from deploy.localcluster import Postgres
from tests.unit.test_fair_queues import _runs
from tests.unit.test_ingestion import _project

WORKERS = 4


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    server = Postgres(tmp_path_factory.mktemp("pg") / "data").start()
    yield server
    server.stop()


def test_concurrent_claims_are_distinct_and_fair(postgres: Postgres) -> None:
    url = postgres.create_database("fair_claims")
    upgrade(url)

    async def scenario() -> tuple[list[str], str, list[str], list[str]]:
        db = Database(url)
        a, b = await _project(db), await _project(db)
        backlog = await _runs(db, a, 200)
        (b_run,) = await _runs(db, b, 1)
        queues = [RunQueue(db) for _ in range(WORKERS)]
        claimed = await asyncio.gather(*(queue.claim(f"w{i}", time.time(), 30) for i, queue in enumerate(queues)))
        rest = []
        while (run := await queues[0].claim("w0", time.time(), 30)) is not None:
            rest.append(run.id)
        await db.dispose()
        return [run.id for run in claimed if run is not None], b_run, backlog, rest

    first_round, b_run, backlog, rest = asyncio.run(scenario())
    assert len(set(first_round)) == len(first_round) >= 2, first_round
    assert b_run in first_round or b_run == rest[0], (first_round, rest[:3])
    assert sorted(first_round + rest) == sorted([*backlog, b_run]), "every run claimed exactly once"
