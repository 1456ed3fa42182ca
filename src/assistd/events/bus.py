"""The event bus: a run's executor publishes `thread.*` events; SSE responses subscribe to them.

`publish` never blocks and never raises for the bus's sake; one bus delivers its events in publish order.
A subscription is registered before `subscribe` returns, so it gets every event published after that, and it
ends with the event that says the run stopped (a terminal status or requires_action). Three buses:
- LocalEventBus: in-process, when this process executes the runs;
- RedisEventBus: one Redis stream per run, between processes. When Redis fails, or is silent while the stored
  run has stopped, a subscription goes on from the store (events/replay.py), so its stream still ends well;
- PollingEventBus: no Redis and runs executed in other processes: the events are derived from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from assistd import jsontext
from assistd.errors import StoreUnavailable
from assistd.events.replay import RunReplay
from assistd.lifecycle import STREAM_ENDING_RUN
from assistd.store.database import Database

log = logging.getLogger(__name__)

STOPPING_EVENTS = frozenset(f"thread.run.{status}" for status in STREAM_ENDING_RUN)
POLL_SECONDS = 0.25
STALL_SECONDS = 3.0  # a Redis subscription this long without an event looks at the stored run
STREAM_PREFIX = "assistd:run-events:"
STREAM_MAXLEN = 10_000
STREAM_TTL_SECONDS = 3600
READ_BLOCK_MS = 1000
CLOSE_FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]


class Subscription(ABC):
    """One run's events in publish order, up to and including the one that says the run stopped."""

    def __init__(self) -> None:
        self._pending: deque[Event] = deque()
        self._done = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._done:
            if not self._pending:
                self._pending.extend(await self._fetch())
                continue
            event = self._pending.popleft()
            if self._accept(event):
                self._done = event.name in STOPPING_EVENTS
                return event
        raise StopAsyncIteration

    @abstractmethod
    async def _fetch(self) -> list[Event]:
        """The next events; waits a while for them, and may return none."""

    def _accept(self, event: Event) -> bool:
        return True

    async def close(self) -> None:
        self._done = True


class EventBus(ABC):
    @abstractmethod
    def publish(self, run_id: str, name: str, data: dict[str, Any]) -> None: ...

    @abstractmethod
    async def subscribe(self, run_id: str) -> Subscription: ...

    async def close(self) -> None:
        return None


# -- in-process ----------------------------------------------------------------------------------------


class _QueueSubscription(Subscription):
    def __init__(self, queue: asyncio.Queue[Event], leave: Callable[[], None]) -> None:
        super().__init__()
        self._queue = queue
        self._leave = leave

    async def _fetch(self) -> list[Event]:
        return [await self._queue.get()]

    async def close(self) -> None:
        await super().close()
        self._leave()


class LocalEventBus(EventBus):
    """Each subscriber has its own queue, so a slow one does not hold up the run."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

    def publish(self, run_id: str, name: str, data: dict[str, Any]) -> None:
        for queue in self._queues.get(run_id, ()):
            queue.put_nowait(Event(name, data))

    async def subscribe(self, run_id: str) -> Subscription:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[run_id].add(queue)
        return _QueueSubscription(queue, lambda: self._leave(run_id, queue))

    def _leave(self, run_id: str, queue: asyncio.Queue[Event]) -> None:
        queues = self._queues.get(run_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[run_id]


# -- from the store ------------------------------------------------------------------------------------


class _ReplaySubscription(Subscription):
    """Events from the store: what changed, every POLL_SECONDS."""

    def __init__(self, replay: RunReplay) -> None:
        super().__init__()
        self._replay = replay
        self._failing = False

    def _accept(self, event: Event) -> bool:
        if event.name.endswith(".delta") and not self._replay.announced(event.data["id"]):
            return False  # its created event was lost; the completed one will carry the whole object
        self._replay.seen(event.name, event.data)
        return True

    async def _fetch(self) -> list[Event]:
        await asyncio.sleep(POLL_SECONDS)
        return await self._changes()

    async def _changes(self) -> list[Event]:
        try:
            changes = await self._replay.changes()
        except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
            if not self._failing:
                log.warning("run %s: reading its state failed (%s); trying again", self._replay.run_id, exc)
            self._failing = True
            return []
        self._failing = False
        return [Event(name, data) for name, data in changes]


class PollingEventBus(EventBus):
    """For a process whose runs execute elsewhere, without Redis: subscribers read the store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def publish(self, run_id: str, name: str, data: dict[str, Any]) -> None:
        return None  # what is published was stored first, and subscribers read the store

    async def subscribe(self, run_id: str) -> Subscription:
        return _ReplaySubscription(await RunReplay.start(self._db, run_id))


# -- Redis ---------------------------------------------------------------------------------------------


def _client(url: str) -> Redis:
    """A client that fails fast (one immediate retry, for a stale pooled connection) instead of backing off;
    its reads time out a while after a blocking read should have returned."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1,
        socket_timeout=READ_BLOCK_MS / 1000 + 4,
        retry=Retry(NoBackoff(), 1),
    )


class _RedisSubscription(_ReplaySubscription):
    """Reads the run's stream after `last_id`; from the store once Redis fails (`last_id` None)."""

    def __init__(self, replay: RunReplay, redis: Redis, key: str, last_id: str | None) -> None:
        super().__init__(replay)
        self._redis = redis
        self._key = key
        self._last_id = last_id
        self._quiet_since = time.monotonic()

    async def _fetch(self) -> list[Event]:
        if self._last_id is None:
            return await super()._fetch()
        try:
            # redis-py annotates the replies of every protocol; _client speaks RESP2: [[key, [(id, fields), ...]]]
            reply = cast(list[list[Any]], await self._redis.xread({self._key: self._last_id}, block=READ_BLOCK_MS))
        except (RedisError, OSError) as exc:
            log.warning("run %s: Redis failed (%s); its events now come from the store", self._replay.run_id, exc)
            self._last_id = None
            return await self._changes()
        if reply:
            entries = reply[0][1]
            self._last_id = entries[-1][0]
            self._quiet_since = time.monotonic()
            return [Event(fields["name"], jsontext.loads(fields["data"])) for _, fields in entries]
        if time.monotonic() - self._quiet_since < STALL_SECONDS:
            return []
        self._quiet_since = time.monotonic()  # silent a while: has the run stopped without a word?
        changes = await self._changes()
        return changes if changes and changes[-1].name in STOPPING_EVENTS else []


class RedisEventBus(EventBus):
    """Publishes through a sender task (one pipeline per batch, in order); a Redis failure drops the batch
    and is logged once per outage, and subscribers make up for it from the store."""

    def __init__(self, url: str, db: Database) -> None:
        self._db = db
        self._writer = _client(url)
        self._reader = _client(url)  # blocking reads hold connections; publishing must not wait for one
        self._outbox: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._failing = False

    def publish(self, run_id: str, name: str, data: dict[str, Any]) -> None:
        payload = jsontext.dumps(data).decode()
        self._outbox.put_nowait((STREAM_PREFIX + run_id, name, payload))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="redis-event-sender")

    async def _send(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                async with self._writer.pipeline(transaction=False) as pipe:
                    for key, name, payload in batch:
                        pipe.xadd(key, {"name": name, "data": payload}, maxlen=STREAM_MAXLEN, approximate=True)
                    for key in dict.fromkeys(key for key, _, _ in batch):
                        pipe.expire(key, STREAM_TTL_SECONDS)
                    await pipe.execute()
            except Exception as exc:  # never the executor's problem: subscribers fall back to the store
                if not self._failing:
                    log.warning("publishing run events to Redis failed (%s); dropping them until it works", exc)
                self._failing = True
            else:
                if self._failing:
                    log.warning("publishing run events to Redis works again")
                self._failing = False
            finally:
                for _ in batch:
                    self._outbox.task_done()

    async def subscribe(self, run_id: str) -> Subscription:
        replay = await RunReplay.start(self._db, run_id)
        key = STREAM_PREFIX + run_id
        try:
            last = await self._reader.xrevrange(key, count=1)
        except (RedisError, OSError) as exc:
            log.warning("run %s: Redis failed (%s); its events come from the store", run_id, exc)
            return _RedisSubscription(replay, self._reader, key, None)
        # an entry's id is never None in a reply, and is str with decode_responses (see _client)
        return _RedisSubscription(replay, self._reader, key, cast(str, last[0][0]) if last else "0-0")

    async def close(self) -> None:
        """Send what was published (for a while), then disconnect."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_FLUSH_SECONDS):  # wait_for could swallow a cancellation (3.11)
                await self._outbox.join()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self._writer.aclose()
        await self._reader.aclose()


def create_event_bus(redis_url: str | None, db: Database, *, worker_in_process: bool) -> EventBus:
    """Redis when configured; else in-process if this process executes the runs; else from the store."""
    if redis_url:
        return RedisEventBus(redis_url, db)
    return LocalEventBus() if worker_in_process else PollingEventBus(db)
