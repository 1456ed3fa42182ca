"""The event bus: a run's executor publishes `thread.*` events; SSE responses subscribe to them.

In-process (embedded mode). A subscriber registers before the job can start, so it never misses an event;
each subscriber has its own queue, and a slow one does not hold up the run.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

    def subscribe(self, run_id: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers[run_id].add(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[Event]) -> None:
        subscribers = self._subscribers.get(run_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[run_id]

    def publish(self, run_id: str, name: str, data: dict[str, Any]) -> None:
        for queue in self._subscribers.get(run_id, ()):
            queue.put_nowait(Event(name, data))
