"""Token buckets: in this process and in Redis they must agree (a burst of a minute's allowance, continuous
refill, tokens spent after the fact may go below zero), and reset times read as OpenAI writes them."""

from __future__ import annotations

import asyncio
import math

import pytest

from assistd.services.buckets import MemoryBuckets, RedisBuckets
from assistd.services.refusals import duration
from deploy.localcluster import Redis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_bucket_bursts_refills_and_goes_into_debt() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock)

    async def scenario() -> None:
        taken = [await buckets.take("a", 60, 1, 1) for _ in range(61)]
        assert [level.allowed for level in taken] == [True] * 60 + [False]
        assert taken[0].remaining == 59 and taken[59].remaining == 0
        assert taken[60].retry_after_seconds == pytest.approx(1.0)  # 60 a minute: one a second
        assert taken[59].reset_seconds == pytest.approx(60.0)
        clock.now += 1.5
        assert (await buckets.take("a", 60, 1, 1)).allowed
        assert not (await buckets.take("a", 60, 1, 1)).allowed
        # other names have buckets of their own
        assert (await buckets.take("b", 60, 1, 1)).remaining == 59
        # spending after the fact: below zero, then a wait until back above the need
        await buckets.take("t", 600, -math.inf, 900)
        refused = await buckets.take("t", 600, 1, 0)
        assert not refused.allowed and refused.retry_after_seconds == pytest.approx(30.1)
        clock.now += 31
        assert (await buckets.take("t", 600, 1, 0)).allowed

    asyncio.run(scenario())


def test_redis_buckets_agree_with_memory() -> None:
    redis = Redis().start()
    try:
        buckets = RedisBuckets(redis.url)

        async def scenario() -> None:
            try:
                taken = [await buckets.take("r", 120, 1, 1) for _ in range(121)]
                assert [level.allowed for level in taken] == [True] * 120 + [False]
                assert taken[0].remaining == pytest.approx(119, abs=0.1)
                assert taken[120].retry_after_seconds == pytest.approx(0.5, abs=0.1)
                await asyncio.sleep(0.6)
                assert (await buckets.take("r", 120, 1, 1)).allowed
                await buckets.take("debt", 60, -math.inf, 90)
                refused = await buckets.take("debt", 60, 1, 0)
                assert not refused.allowed and refused.retry_after_seconds == pytest.approx(31, abs=0.5)
            finally:
                await buckets.close()

        asyncio.run(scenario())
    finally:
        redis.stop()


def test_redis_down_lets_requests_through() -> None:
    buckets = RedisBuckets("redis://127.0.0.1:1/0")

    async def scenario() -> None:
        try:
            assert (await buckets.take("x", 1, 1, 1)).allowed
            assert (await buckets.take("x", 1, 1, 1)).allowed
        finally:
            await buckets.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.0004, "1ms"), (0.02, "20ms"), (1.5, "1.5s"), (20, "20s"), (360, "6m0s"), (61.2, "1m1s")]
)
def test_reset_durations_read_like_openai(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_a_storm_of_run_creates_over_the_limit_is_refused_without_waiting(tmp_path) -> None:
    """Places among the active runs are held while runs are created: with a limit of 3 and 40 creates at once
    (each holding its place 0.3 s, as a create waiting for the write lock would), 3 go on and 37 are refused
    at once, not after the others' transactions; a place is free again once its create is done."""
    from assistd.errors import RateLimited
    from assistd.services.limit_settings import Limits
    from assistd.services.limits import LimitService
    from assistd.services.principal import Principal
    from assistd.store.database import Database
    from assistd.store.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}"
    upgrade(url)

    async def scenario() -> tuple[int, list[float], bool]:
        db = Database(url)
        limits = LimitService(db, Limits(active_runs=3), MemoryBuckets())
        principal = Principal(project_id="proj_a", key_id="key_a")
        await limits.limits_for(principal)  # as on the server, where admitting the request read them
        went_on, refusals = 0, []

        async def create() -> None:
            nonlocal went_on
            started = asyncio.get_running_loop().time()
            try:
                async with limits.run_place(principal):
                    went_on += 1
                    await asyncio.sleep(0.3)
            except RateLimited as exc:
                assert exc.code == "rate_limit_exceeded" and exc.headers["retry-after"] == "1"
                refusals.append(asyncio.get_running_loop().time() - started)

        await asyncio.gather(*(create() for _ in range(40)))
        await asyncio.sleep(0.3)  # past the memo of a subject found full
        async with limits.run_place(principal):
            again = True
        await db.dispose()
        return went_on, refusals, again

    went_on, refusals, again = asyncio.run(scenario())
    assert went_on == 3 and len(refusals) == 37 and again
    assert max(refusals) < 0.1, f"refusals waited {max(refusals):.2f} s"
