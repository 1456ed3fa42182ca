"""Token buckets for the rate limits, in this process or in Redis (shared by every process).

A bucket holds a minute's allowance and refills continuously. A take asks for `need` to be left and takes
`cost`; a cost taken after the fact (a generation's tokens) may leave the bucket below zero.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

MAX_CACHED_SUBJECTS = 10_000


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
        """Refill the bucket for the time since its last take, then take `cost` when `need` is left."""
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
        """The take, done atomically in Redis; allowed when Redis cannot be reached."""
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
        """Close the connection to Redis."""
        await self._redis.aclose()
