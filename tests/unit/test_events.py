"""Run events across processes: two Redis buses on a real redis-server, Redis failing mid-run, the stall guard,
and the polling bus, with the real executor on a real SQLite store; what subscribers get is read by the SDK."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from sqlalchemy import select

from assistd.api import sse
from assistd.engines.base import Chunk, ToolCallDelta, Usage
from assistd.engines.registry import ModelRegistry
from assistd.events import bus as events_module
from assistd.events.bus import Event, LocalEventBus, PollingEventBus, RedisEventBus, Subscription
from assistd.ids import new_id
from assistd.protocol import wire
from assistd.runtime.executor import ExecutorSettings, RunExecutor
from assistd.schemas.runs import SubmitToolOutputs
from assistd.services.buckets import MemoryBuckets
from assistd.services.limit_settings import NO_LIMITS
from assistd.services.limits import LimitService
from assistd.services.principal import Principal
from assistd.services.runs import RunService
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.queue import RunQueue
from deploy.localcluster import Redis, free_port
from tests.fakes import ScriptedEngine
from tests.unit.test_run_states import setup_run

TIMEOUT = 30  # seconds any scenario may take
PUBLISH_FAILED = "publishing run events to Redis failed"
TOOLS = [{"type": "function", "function": {"name": "f"}}]


@pytest.fixture()
def store(sqlite_url) -> str:
    return sqlite_url


@pytest.fixture()
def redis_server():
    server = Redis().start()
    yield server
    server.stop()


class Recording(LocalEventBus):
    """A local bus that remembers what the executor published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[Event] = []

    def publish(self, run_id: str, name: str, data: dict[str, Any]) -> None:
        self.published.append(Event(name, data))
        super().publish(run_id, name, data)


class RecordingRedis(RedisEventBus):
    def __init__(self, url: str, db: Database) -> None:
        super().__init__(url, db)
        self.published: list[Event] = []

    def publish(self, run_id: str, name: str, data: dict[str, Any]) -> None:
        self.published.append(Event(name, data))
        super().publish(run_id, name, data)


def text_engine(words: int, delay: float = 0.0) -> ScriptedEngine:
    engine = ScriptedEngine()
    engine.script = [Chunk(text=f"w{i} ") for i in range(words)] + [Chunk(finish_reason="stop", usage=Usage(3, 9))]
    engine.delay = delay
    return engine


def tool_engine(call_id: str, delay: float = 0.0) -> ScriptedEngine:
    engine = ScriptedEngine()
    arguments = json.dumps({"call": call_id})  # a new call each round: a repeated one would not be handed back
    engine.script = [Chunk(tool_calls=(ToolCallDelta(0, call_id, "f", arguments),)), Chunk(finish_reason="tool_calls")]
    engine.delay = delay
    return engine


async def execute(db: Database, engine: ScriptedEngine, bus) -> None:
    """One worker leg: claim the queued run and execute it."""
    executor = RunExecutor(db, ModelRegistry({"fake": engine}), bus, ExecutorSettings(30, 600))
    claimed = await RunQueue(db).claim("w1", time.time(), 30)
    assert claimed is not None
    await executor.execute(claimed, "w1")


async def collect(subscription: Subscription) -> list[Event]:
    try:
        return [event async for event in subscription]
    finally:
        await subscription.close()


async def stored(db: Database, run_id: str) -> tuple[tables.Run, list[tables.RunStep], list[tables.Message]]:
    async with db.read() as session:
        run = await session.get(tables.Run, run_id)
        steps = await session.scalars(select(tables.RunStep).where(tables.RunStep.run_id == run_id))
        messages = await session.scalars(select(tables.Message).where(tables.Message.run_id == run_id))
        return run, list(steps.all()), list(messages.all())


def names(events: list[Event]) -> list[str]:
    return [event.name for event in events]


def assert_no_repeats(events: list[Event]) -> None:
    """No object is announced twice in the same state (deltas aside)."""
    counts = Counter((e.name, e.data["id"]) for e in events if not e.name.endswith(".delta"))
    assert all(count == 1 for count in counts.values()), counts


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def on_text_delta(self, delta, snapshot) -> None:
        self.text += delta.value or ""


def read_by_sdk(run: tables.Run, events: list[Event]):
    """Stream `events` (after the create prelude) to the official SDK; its final run, messages and text."""
    prelude = [Event("thread.run.created", wire.run(run)), Event("thread.run.queued", wire.run(run))]
    body = b"".join(sse.encode(e.data, e.name) for e in [*prelude, *events]) + sse.encode(sse.DONE, "done")
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    client = openai.OpenAI(
        api_key="test", base_url="http://assistd.test/v1", http_client=httpx.Client(transport=transport), max_retries=0
    )
    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=run.thread_id, assistant_id="asst_x", event_handler=handler) as s:
        s.until_done()
        return s.get_final_run(), s.get_final_messages(), handler.text


def test_two_redis_buses_carry_a_run_in_order(store, redis_server) -> None:
    """The worker's bus and the API's bus are separate processes' buses: all events arrive, in order."""

    async def scenario():
        db = Database(store)
        worker_bus, api_bus = RecordingRedis(redis_server.url, db), RedisEventBus(redis_server.url, db)
        run_id = new_id("run")
        subscription = await api_bus.subscribe(run_id)  # before the run is stored, as a create does
        await setup_run(db, id=run_id)
        received, _ = await asyncio.wait_for(
            asyncio.gather(collect(subscription), execute(db, text_engine(20), worker_bus)), TIMEOUT
        )
        await worker_bus.close()
        await api_bus.close()
        await db.dispose()
        return worker_bus.published, received

    published, received = asyncio.run(scenario())
    assert len(published) == 28 and received == published
    assert received[-1].name == "thread.run.completed"


def test_a_subscriber_gets_only_later_events(store, redis_server) -> None:
    """The stream already holds the previous leg's requires_action; a new subscriber must not see it."""

    async def scenario():
        db = Database(store)
        run = await setup_run(db, status="requires_action")
        shown = wire.run(run)
        earlier = RedisEventBus(redis_server.url, db)
        earlier.publish(run.id, "thread.run.requires_action", shown)
        await earlier.close()  # sent
        api_bus, later = RedisEventBus(redis_server.url, db), RedisEventBus(redis_server.url, db)
        subscription = await api_bus.subscribe(run.id)
        later.publish(run.id, "thread.run.in_progress", {**shown, "status": "in_progress"})
        later.publish(run.id, "thread.run.completed", {**shown, "status": "completed"})
        received = await asyncio.wait_for(collect(subscription), TIMEOUT)
        for bus in (api_bus, later):
            await bus.close()
        await db.dispose()
        return received

    assert names(asyncio.run(scenario())) == ["thread.run.in_progress", "thread.run.completed"]


def test_a_delta_for_an_object_never_announced_is_dropped(store, redis_server) -> None:
    """Its created event was lost (the publisher failed for a while): the SDK would fail on the delta."""

    async def scenario():
        db = Database(store)
        run = await setup_run(db)
        api_bus, worker_bus = RedisEventBus(redis_server.url, db), RedisEventBus(redis_server.url, db)
        subscription = await api_bus.subscribe(run.id)
        delta = {"id": "msg_lost", "object": "thread.message.delta", "delta": {"content": []}}
        worker_bus.publish(run.id, "thread.message.delta", delta)
        worker_bus.publish(run.id, "thread.run.completed", {**wire.run(run), "status": "completed"})
        received = await asyncio.wait_for(collect(subscription), TIMEOUT)
        for bus in (api_bus, worker_bus):
            await bus.close()
        await db.dispose()
        return received

    assert names(asyncio.run(scenario())) == ["thread.run.completed"]


def test_redis_stopping_mid_run_ends_the_stream_from_the_store(store, redis_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=events_module.__name__)

    async def scenario():
        db = Database(store)
        worker_bus, api_bus = RedisEventBus(redis_server.url, db), RedisEventBus(redis_server.url, db)
        run = await setup_run(db)
        subscription = await api_bus.subscribe(run.id)
        worker = asyncio.create_task(execute(db, text_engine(15, delay=0.05), worker_bus))
        received: list[Event] = []

        async def read() -> None:
            async for event in subscription:
                received.append(event)
                if names(received).count("thread.message.delta") == 3:
                    redis_server.stop()

        await asyncio.wait_for(read(), TIMEOUT)
        await asyncio.wait_for(worker, TIMEOUT)  # publishing into a dead Redis raised nothing into the run
        await subscription.close()
        for bus in (worker_bus, api_bus):
            await bus.close()
        final = await stored(db, run.id)
        await db.dispose()
        return received, final

    received, (run, _, messages) = asyncio.run(scenario())
    assert run.status == "completed"
    assert names(received)[-3:] == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]
    assert names(received).count("thread.message.delta") == 3  # the rest of the text came whole, in completed
    assert_no_repeats(received)
    assert received[-3].data == wire.message(messages[0]) and received[-1].data == wire.run(run)
    assert sum(PUBLISH_FAILED in record.getMessage() for record in caplog.records) == 1
    final_run, final_messages, _ = read_by_sdk(run, received)
    assert final_run.status == "completed"
    assert final_messages[0].content[0].text.value == messages[0].content[0]["text"]["value"]


def test_stall_guard_finishes_a_run_the_stream_never_announced(store, redis_server, caplog, monkeypatch) -> None:
    """The worker cannot reach Redis at all; the subscriber's Redis is fine but silent, so it asks the store."""
    caplog.set_level(logging.WARNING, logger=events_module.__name__)
    monkeypatch.setattr(events_module, "STALL_SECONDS", 0.5)

    async def scenario():
        db = Database(store)
        worker_bus = RedisEventBus(f"redis://127.0.0.1:{free_port()}/0", db)
        api_bus = RedisEventBus(redis_server.url, db)
        run = await setup_run(db)
        subscription = await api_bus.subscribe(run.id)
        received, _ = await asyncio.wait_for(
            asyncio.gather(collect(subscription), execute(db, text_engine(5, delay=0.1), worker_bus)), TIMEOUT
        )
        for bus in (worker_bus, api_bus):
            await bus.close()
        final = await stored(db, run.id)
        await db.dispose()
        return received, final

    received, (run, steps, messages) = asyncio.run(scenario())
    assert names(received) == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert received[-1].data == wire.run(run) and received[-2].data == wire.run_step(steps[0])
    assert sum(PUBLISH_FAILED in record.getMessage() for record in caplog.records) == 1
    _, _, text = read_by_sdk(run, received)
    assert text == messages[0].content[0]["text"]["value"] == "".join(f"w{i} " for i in range(5))


def test_polling_bus_replays_create_and_tool_legs_once(store) -> None:
    """Through the run service, as the API calls it: create, two tool legs (the second ends in requires_action
    again, between two polls), then text. Each stream ends in its stopping event; nothing comes twice."""

    async def scenario():
        db = Database(store)
        api_bus = PollingEventBus(db)
        service = RunService(
            db, ModelRegistry({}), api_bus, lambda **_queued: None, LimitService(db, NO_LIMITS, MemoryBuckets())
        )
        run_id = new_id("run")
        subscription = await api_bus.subscribe(run_id)
        run = await setup_run(db, id=run_id, tools=TOOLS)
        principal = Principal(project_id=run.project_id, key_id="test")
        legs = []
        for engine in (tool_engine("call_0", delay=0.4), tool_engine("call_1"), text_engine(3, delay=0.3)):
            received, _ = await asyncio.wait_for(
                asyncio.gather(collect(subscription), execute(db, engine, LocalEventBus())), TIMEOUT
            )
            legs.append(received)
            if received[-1].name == "thread.run.requires_action":
                call = received[-1].data["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
                body = SubmitToolOutputs(tool_outputs=[{"tool_call_id": call, "output": "ok"}])
                started = await service.submit_tool_outputs(principal, run.thread_id, run.id, body, stream=True)
                subscription = started.events
        final = await stored(db, run.id)
        await db.dispose()
        return legs, final

    (first, second, third), (run, steps, messages) = asyncio.run(scenario())
    tool_steps = sorted(step.id for step in steps if step.type == "tool_calls")
    assert names(first) == [
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.requires_action",
    ]
    second = [e for e in second if e.name != "thread.run.in_progress"]  # too quick for a poll to see, mostly
    assert [(e.name, e.data["id"]) for e in second] == [
        ("thread.run.step.completed", tool_steps[0]),
        ("thread.run.step.created", tool_steps[1]),
        ("thread.run.step.in_progress", tool_steps[1]),
        ("thread.run.requires_action", run.id),
    ]
    assert second[-1].data["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"] == "call_1"
    assert [(e.name, e.data["id"]) for e in third[:2]] == [
        ("thread.run.in_progress", run.id),
        ("thread.run.step.completed", tool_steps[1]),  # completed by the submit, which publishes no event
    ]
    assert names(third)[2:] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    for leg in (first, second, third):
        assert_no_repeats(leg)
    assert third[-1].data == wire.run(run) and third[-3].data == wire.message(messages[0])


def test_replayed_events_have_the_executors_shapes(store) -> None:
    """What the polling bus derives equals what the executor published (wire.* of the rows), and the SDK
    assembles the same run, message and text from it."""

    async def scenario():
        db = Database(store)
        worker_bus, api_bus = Recording(), PollingEventBus(db)
        run = await setup_run(db)
        subscription = await api_bus.subscribe(run.id)
        received, _ = await asyncio.wait_for(
            asyncio.gather(collect(subscription), execute(db, text_engine(4, delay=0.3), worker_bus)), TIMEOUT
        )
        final = await stored(db, run.id)
        await db.dispose()
        return run, worker_bus.published, received, final

    queued, published, received, (run, _, messages) = asyncio.run(scenario())
    by_name_and_id = {(e.name, e.data["id"]): e.data for e in published}
    for event in received:
        if event.name == "thread.message.delta":
            continue
        expected = by_name_and_id[(event.name, event.data["id"])]
        if event.name.startswith("thread.run.step."):  # first seen by a poll after it ended, it has its usage
            expected = {**expected, "usage": event.data["usage"]}
        assert event.data == expected, event.name
    assert received[-1].data == wire.run(run)
    final_run, final_messages, text = read_by_sdk(queued, received)
    assert final_run.to_dict() == wire.run(run)
    assert final_messages[0].to_dict() == wire.message(messages[0])
    assert text == messages[0].content[0]["text"]["value"]
