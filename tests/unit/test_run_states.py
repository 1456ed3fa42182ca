"""The run state machine and the executor, driven by a scripted fake engine over a real SQLite store."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from assistd import lifecycle
from assistd.clock import now
from assistd.engines.base import Chunk, ToolCallDelta, Usage
from assistd.engines.registry import ModelRegistry
from assistd.errors import UpstreamError
from assistd.events.bus import LocalEventBus
from assistd.ids import new_id
from assistd.runtime.executor import MAX_ATTEMPTS, ExecutorSettings, RunExecutor
from assistd.services.buckets import MemoryBuckets
from assistd.services.limit_settings import NO_LIMITS
from assistd.services.limits import LimitService
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.migrate import upgrade
from assistd.store.pagination import PageRequest
from assistd.store.queue import RunQueue
from assistd.store.repositories import MessageRepository, RunRepository, RunStepRepository
from tests.fakes import ScriptedEngine

ALL = sorted(lifecycle.TRANSITIONS)
LEGAL = {
    ("queued", "in_progress"),
    ("queued", "cancelled"),
    ("queued", "failed"),
    ("queued", "expired"),
    ("in_progress", "requires_action"),
    ("in_progress", "completed"),
    ("in_progress", "incomplete"),
    ("in_progress", "failed"),
    ("in_progress", "cancelling"),
    ("in_progress", "expired"),
    ("requires_action", "queued"),
    ("requires_action", "cancelled"),
    ("requires_action", "failed"),
    ("requires_action", "expired"),
    ("cancelling", "cancelled"),
    ("cancelling", "failed"),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(ALL, ALL)))
def test_every_transition_is_legal_or_not(source, target) -> None:
    assert lifecycle.is_allowed(source, target) == ((source, target) in LEGAL)


def test_terminal_states_are_final() -> None:
    assert all(not lifecycle.TRANSITIONS[status] for status in lifecycle.TERMINAL_RUN)
    assert lifecycle.sources_of("cancelled") == {"queued", "requires_action", "cancelling"}


def test_ending_a_run_ends_its_unfinished_steps_in_the_same_transaction(world) -> None:
    """Cancel and expire end the run and its in-progress steps together; finished steps keep their status, and
    a run no longer in a source status is left alone."""

    async def scenario() -> tuple[tables.Run, list[tables.RunStep], bool]:
        db = Database(world)
        run = await setup_run(db, status="requires_action")
        async with db.write() as session:
            steps = RunStepRepository(session, run.project_id)
            for status in ("completed", "in_progress"):
                await steps.add(
                    tables.RunStep(
                        id=new_id("step"),
                        run_id=run.id,
                        thread_id=run.thread_id,
                        assistant_id=run.assistant_id,
                        created_at=now(),
                        type="tool_calls",
                        status=status,
                        step_details={"type": "tool_calls", "tool_calls": []},
                        metadata_={},
                    )
                )
        async with db.write() as session:
            runs = RunRepository(session, run.project_id)
            assert await runs.end(run.id, lifecycle.RunStatus.EXPIRED, 123, required_action=None)
            again = await runs.end(run.id, lifecycle.RunStatus.CANCELLED, 456, cancelled_at=456)
        async with db.read() as session:
            final = await RunRepository(session, run.project_id).get(run.id)
            ended = await RunStepRepository(session, run.project_id).for_run(run.id)
        await db.dispose()
        return final, ended, again

    run, steps, again = asyncio.run(scenario())
    assert run.status == "expired" and run.required_action is None and not again
    assert sorted((step.status, step.expired_at) for step in steps) == [("completed", None), ("expired", 123)]


@pytest.fixture()
def world(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    upgrade(url)
    return url


async def setup_run(
    db: Database, user_text: str = "hello", assistant_metadata: dict | None = None, **overrides
) -> tables.Run:
    """A project, a thread with one user message and a queued run (and its assistant, given metadata)."""
    project = tables.Project(id=new_id("project"), name=new_id("project"), created_at=0)
    thread = tables.Thread(id=new_id("thread"), created_at=now(), metadata_={}, tool_resources=None)
    async with db.write() as session:
        session.add(project)
        await session.flush()
        thread.project_id = project.id
        session.add(thread)
        await session.flush()
        await MessageRepository(session, project.id).add(
            tables.Message(
                id=new_id("message"),
                thread_id=thread.id,
                created_at=now(),
                role="user",
                status="completed",
                content=[{"type": "text", "text": {"value": user_text, "annotations": []}}],
                metadata_={},
            )
        )
        fields = {
            "id": new_id("run"),
            "thread_id": thread.id,
            "assistant_id": "asst_x",
            "created_at": now(),
            "status": "queued",
            "model": "fake",
            "instructions": "be nice",
            "tools": [],
            "metadata_": {},
            "parallel_tool_calls": True,
            "truncation_strategy": {"type": "auto", "last_messages": None},
            "attempts": 0,
        }
        run = tables.Run(**{**fields, **overrides})
        if assistant_metadata is not None:
            session.add(
                tables.Assistant(
                    id=run.assistant_id,
                    project_id=project.id,
                    created_at=now(),
                    model="fake",
                    tools=[],
                    metadata_=assistant_metadata,
                )
            )
        await RunRepository(session, project.id).add(run)
    return run


class Recording(LocalEventBus):
    """Remembers the names of the events published."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def publish(self, run_id: str, name: str, data: dict) -> None:
        self.names.append(name)


async def drive(url: str, engine: ScriptedEngine, **overrides) -> tuple[tables.Run, list[str], list[tables.RunStep]]:
    db = Database(url)
    bus = Recording()
    executor = RunExecutor(db, ModelRegistry({"fake": engine}), bus, ExecutorSettings(30, 600))
    run = await setup_run(db, **overrides)
    claimed = await RunQueue(db).claim("w1", time.time(), 30)
    assert claimed is not None and claimed.id == run.id
    assert await RunQueue(db).claim("w2", time.time(), 30) is None, "a claimed run is nobody else's"
    await executor.execute(claimed, "w1")
    async with db.read() as session:
        final = await RunRepository(session, run.project_id).get(run.id)
        steps = await RunStepRepository(session, run.project_id).for_run(run.id)
    await db.dispose()
    return final, bus.names, steps


def test_text_completes(world) -> None:
    engine = ScriptedEngine()
    engine.script = [Chunk(text="Hel"), Chunk(text="lo"), Chunk(finish_reason="stop", usage=Usage(5, 2))]
    run, events, steps = asyncio.run(drive(world, engine))
    assert run.status == "completed"
    assert run.usage == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert events == [
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert [s.status for s in steps] == ["completed"]
    assert engine.requests[0].messages == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hello"},
    ]


def test_tool_call_requires_action(world) -> None:
    engine = ScriptedEngine()
    engine.script = [
        Chunk(tool_calls=(ToolCallDelta(0, "call_1", "f", '{"a": 1}'),)),
        Chunk(finish_reason="tool_calls", usage=Usage(5, 3)),
    ]
    run, events, steps = asyncio.run(drive(world, engine, tools=[{"type": "function", "function": {"name": "f"}}]))
    assert run.status == "requires_action" and run.expires_at > now() + 500
    assert run.required_action["submit_tool_outputs"]["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": '{"a": 1}',
    }
    assert events[-1] == "thread.run.requires_action" and [s.type for s in steps] == ["tool_calls"]


def test_length_with_a_limit_is_incomplete(world) -> None:
    engine = ScriptedEngine()
    engine.script = [Chunk(text="abc"), Chunk(finish_reason="length", usage=Usage(5, 3))]
    run, events, _ = asyncio.run(drive(world, engine, max_completion_tokens=3))
    assert run.status == "incomplete" and run.incomplete_details == {"reason": "max_completion_tokens"}
    assert "thread.message.incomplete" in events and events[-1] == "thread.run.incomplete"
    assert engine.requests[0].max_tokens == 3


def test_engine_failure_fails_the_run(world) -> None:
    engine = ScriptedEngine()
    engine.script = UpstreamError("upstream went away")
    run, events, _ = asyncio.run(drive(world, engine))
    assert run.status == "failed" and run.last_error == {"code": "server_error", "message": "upstream went away"}
    assert events[-1] == "thread.run.failed" and run.failed_at


def test_cancel_while_generating(world) -> None:
    async def scenario():
        engine = ScriptedEngine()
        engine.script = [Chunk(text=str(i)) for i in range(200)] + [Chunk(finish_reason="stop", usage=Usage(1, 200))]
        engine.delay = 0.01  # two seconds in all: time enough to cancel it half-way
        db = Database(world)
        executor = RunExecutor(db, ModelRegistry({"fake": engine}), LocalEventBus(), ExecutorSettings(30, 600))
        run = await setup_run(db)
        claimed = await RunQueue(db).claim("w1", time.time(), 30)
        task = asyncio.create_task(executor.execute(claimed, "w1"))
        await asyncio.sleep(0.2)
        async with db.write() as session:
            assert await RunRepository(session, run.project_id).transition(run.id, {"in_progress"}, status="cancelling")
            assert not await RunRepository(session, run.project_id).transition(run.id, {"queued"}, status="in_progress")
        await asyncio.wait_for(task, 10)
        async with db.read() as session:
            final = await RunRepository(session, run.project_id).get(run.id)
            messages = await MessageRepository(session, run.project_id).page(PageRequest(), run_id=run.id)
        await db.dispose()
        return final, messages.items

    run, messages = asyncio.run(scenario())
    assert run.status == "cancelled" and run.cancelled_at
    assert messages[0].status == "incomplete" and messages[0].incomplete_details == {"reason": "run_cancelled"}


def test_max_prompt_tokens_drops_old_messages_or_ends_incomplete(world) -> None:
    engine = ScriptedEngine()
    engine.script = [Chunk(text="ok"), Chunk(finish_reason="stop", usage=Usage(3, 1))]
    run, _, _ = asyncio.run(drive(world, engine, max_prompt_tokens=3))
    assert run.status == "completed"
    assert engine.requests[0].messages == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hello"},
    ]
    run, events, _ = asyncio.run(drive(world, engine, max_prompt_tokens=2))
    assert run.status == "incomplete" and run.incomplete_details == {"reason": "max_prompt_tokens"}
    assert events[-1] == "thread.run.incomplete" and len(engine.requests) == 1


def test_heartbeat_keeps_a_quiet_run_leased(world) -> None:
    """A run waiting a long time for its first token keeps its lease: nobody else takes it, it runs once."""

    async def scenario():
        engine = ScriptedEngine()
        engine.script = [Chunk(text="late"), Chunk(finish_reason="stop", usage=Usage(1, 1))]
        engine.delay = 1.0  # more than three leases of 0.3 s without a token
        db = Database(world)
        executor = RunExecutor(db, ModelRegistry({"fake": engine}), LocalEventBus(), ExecutorSettings(0.3, 600))
        run = await setup_run(db)
        claimed = await RunQueue(db).claim("w1", time.time(), 0.3)
        task = asyncio.create_task(executor.execute(claimed, "w1"))
        await asyncio.sleep(0.8)
        stolen = await RunQueue(db).claim("w2", time.time(), 0.3)
        await asyncio.wait_for(task, 10)
        async with db.read() as session:
            final = await RunRepository(session, run.project_id).get(run.id)
            steps = await RunStepRepository(session, run.project_id).for_run(run.id)
        await db.dispose()
        return stolen, final, steps

    stolen, run, steps = asyncio.run(scenario())
    assert stolen is None
    assert run.status == "completed" and run.attempts == 1 and len(steps) == 1


@pytest.mark.parametrize(
    ("language", "named"), [("fr", "French"), ("pt-BR", "Portuguese (BR)"), ("Klingon", "Klingon")]
)
def test_response_language_reaches_the_instructions(world, language, named) -> None:
    engine = ScriptedEngine()
    engine.script = [Chunk(text="Bonjour"), Chunk(finish_reason="stop", usage=Usage(5, 1))]
    run, _, _ = asyncio.run(drive(world, engine, response_language=language))
    assert run.status == "completed"
    system = engine.requests[0].messages[0]
    assert system["role"] == "system" and system["content"].startswith("be nice\n\n")
    assert f"Always write your answers in {named}" in system["content"]


def test_many_tool_rounds_are_not_taken_for_crashes(world) -> None:
    """Each submit_tool_outputs queues the run again; only interruptions of one leg may count toward failing it."""
    from assistd.schemas.runs import SubmitToolOutputs
    from assistd.services.principal import Principal
    from assistd.services.runs import RunService

    engine = ScriptedEngine()
    tools = [{"type": "function", "function": {"name": "f"}}]

    async def scenario() -> tables.Run:
        db = Database(world)
        registry = ModelRegistry({"fake": engine})
        executor = RunExecutor(db, registry, LocalEventBus(), ExecutorSettings(30, 600))
        service = RunService(
            db, registry, LocalEventBus(), lambda **_queued: None, LimitService(db, NO_LIMITS, MemoryBuckets())
        )
        run = await setup_run(db, tools=tools)
        for round_index in range(MAX_ATTEMPTS + 2):
            call_id = f"call_{round_index}"
            engine.script = [
                Chunk(tool_calls=(ToolCallDelta(0, call_id, "f", f'{{"n": {round_index}}}'),)),
                Chunk(finish_reason="tool_calls", usage=Usage(5, 3)),
            ]
            claimed = await RunQueue(db).claim("w1", time.time(), 30)
            await executor.execute(claimed, "w1")
            principal = Principal(project_id=run.project_id, key_id="test")
            body = SubmitToolOutputs(tool_outputs=[{"tool_call_id": call_id, "output": "ok"}])
            await service.submit_tool_outputs(principal, run.thread_id, run.id, body, stream=False)
        engine.script = [Chunk(text="done"), Chunk(finish_reason="stop", usage=Usage(5, 1))]
        await executor.execute(await RunQueue(db).claim("w1", time.time(), 30), "w1")
        async with db.read() as session:
            final = await RunRepository(session, run.project_id).get(run.id)
        await db.dispose()
        return final

    final = asyncio.run(scenario())
    assert final.status == "completed", final.last_error


def _call(call_id: str, arguments: str) -> list[Chunk]:
    return [
        Chunk(tool_calls=(ToolCallDelta(0, call_id, "f", arguments),)),
        Chunk(finish_reason="tool_calls", usage=Usage(5, 3)),
    ]


async def _tool_rounds(
    world: str, engine: ScriptedEngine, rounds: int, settings: ExecutorSettings, tool_choice: object = "auto"
) -> tuple[tables.Run, list[tables.RunStep]]:
    """Run `rounds` claims of one run, submitting an output for every call it hands back; the final run."""
    from assistd.schemas.runs import SubmitToolOutputs
    from assistd.services.principal import Principal
    from assistd.services.runs import RunService

    db = Database(world)
    registry = ModelRegistry({"fake": engine})
    executor = RunExecutor(db, registry, LocalEventBus(), settings)
    service = RunService(
        db, registry, LocalEventBus(), lambda **_queued: None, LimitService(db, NO_LIMITS, MemoryBuckets())
    )
    run = await setup_run(db, tools=[{"type": "function", "function": {"name": "f"}}], tool_choice=tool_choice)
    principal = Principal(project_id=run.project_id, key_id="test")
    for _ in range(rounds):
        claimed = await RunQueue(db).claim("w1", time.time(), 30)
        if claimed is None:
            break
        await executor.execute(claimed, "w1")
        async with db.read() as session:
            current = await RunRepository(session, run.project_id).get(run.id)
        if current.status != "requires_action":
            break
        outputs = [
            {"tool_call_id": call["id"], "output": "sunny"}
            for call in current.required_action["submit_tool_outputs"]["tool_calls"]
        ]
        body = SubmitToolOutputs(tool_outputs=outputs)
        await service.submit_tool_outputs(principal, run.thread_id, run.id, body, stream=False)
    async with db.read() as session:
        final = await RunRepository(session, run.project_id).get(run.id)
        steps = await RunStepRepository(session, run.project_id).for_run(run.id)
    await db.dispose()
    return final, steps


def test_a_repeated_call_is_answered_in_text(world) -> None:
    """The same function with the same arguments (key order and spacing aside) is not handed back again."""
    engine = ScriptedEngine()
    engine.next_scripts = [_call("call_1", '{"city": "Paris", "n": 1}'), _call("call_2", '{ "n": 1, "city":"Paris"}')]
    engine.script = [Chunk(text="It is sunny."), Chunk(finish_reason="stop", usage=Usage(7, 4))]
    run, steps = asyncio.run(_tool_rounds(world, engine, 5, ExecutorSettings(30, 600)))
    assert run.status == "completed"
    assert [step.type for step in steps] == ["tool_calls", "message_creation"]
    assert [request.tool_choice for request in engine.requests] == ["auto", "auto", "none"]
    assert run.usage["completion_tokens"] == 3 + 3 + 4  # the discarded repeat is counted too


def test_a_repeat_among_new_calls_is_left_out(world) -> None:
    engine = ScriptedEngine()
    engine.next_scripts = [
        _call("call_1", '{"city": "Paris"}'),
        [
            Chunk(tool_calls=(ToolCallDelta(0, "call_2", "f", '{"city": "Paris"}'),)),
            Chunk(tool_calls=(ToolCallDelta(1, "call_3", "f", '{"city": "Rome"}'),)),
            Chunk(tool_calls=(ToolCallDelta(2, "call_4", "f", '{"city": "Rome"}'),)),
            Chunk(finish_reason="tool_calls", usage=Usage(5, 3)),
        ],
    ]
    engine.script = [Chunk(text="done"), Chunk(finish_reason="stop", usage=Usage(5, 1))]
    run, steps = asyncio.run(_tool_rounds(world, engine, 5, ExecutorSettings(30, 600)))
    assert run.status == "completed"
    handed = [[call["id"] for call in step.step_details["tool_calls"]] for step in steps if step.type == "tool_calls"]
    assert handed == [["call_1"], ["call_3"]]


def test_tool_rounds_are_limited(world) -> None:
    """A model that calls with new arguments every time is made to answer after max_tool_rounds rounds."""
    engine = ScriptedEngine()
    engine.next_scripts = [_call(f"call_{i}", f'{{"n": {i}}}') for i in range(10)]
    run, steps = asyncio.run(_tool_rounds(world, engine, 10, ExecutorSettings(30, 600, max_tool_rounds=3)))
    assert run.status == "completed"
    assert [step.type for step in steps] == ["tool_calls"] * 3 + ["message_creation"]
    assert [request.tool_choice for request in engine.requests] == ["auto", "auto", "auto", "none"]


@pytest.mark.parametrize("forced", ["required", {"type": "function", "function": {"name": "f"}}])
def test_a_forced_call_is_made_once_then_the_model_answers(world, forced) -> None:
    """A forced tool_choice holds for the first round; with its outputs the model answers in text. An engine
    that calls although tool_choice is none (an upstream may) does not loop either: its calls are dropped."""
    engine = ScriptedEngine()
    engine.script = _call("call_1", '{"n": 1}')
    run, steps = asyncio.run(_tool_rounds(world, engine, 5, ExecutorSettings(30, 600), forced))
    assert run.status == "completed" and [step.type for step in steps] == ["tool_calls", "message_creation"]
    assert [request.tool_choice for request in engine.requests] == [forced, "none"]


def test_a_run_handed_back_by_a_stopping_worker_is_taken_at_once(world) -> None:
    """A graceful stop releases the lease (owner NULL); the next worker claims the run without waiting."""

    async def scenario() -> tuple[tables.Run | None, tables.Run | None]:
        db = Database(world)
        await setup_run(db)
        queue = RunQueue(db)
        first = await queue.claim("w1", time.time(), 30)  # a claim starts a queued run
        assert first is not None and first.status == "in_progress" and first.started_at is not None
        await queue.release(first.id, "w1")
        again = await queue.claim("w2", time.time(), 30)
        await db.dispose()
        return first, again

    first, again = asyncio.run(scenario())
    assert first is not None and again is not None and again.id == first.id
    assert again.lease_owner == "w2" and again.attempts == 2


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, ("in_progress", "started now")),  # new: the claim starts it
        ({"attempts": 1}, ("queued", None)),  # taken before and handed back unstarted: the executor starts it
        ({"attempts": 0, "started_at": 1}, ("in_progress", 1)),  # queued again by tool outputs: started long ago
        ({"status": "cancelling"}, ("cancelling", None)),
    ],
)
def test_a_claim_starts_a_run_no_worker_took_yet(world, before, after) -> None:
    """Queued → in_progress in the claim's own UPDATE, only for a run never taken (attempts 0), keeping the first
    started_at; the executor tells such a run by in_progress with attempts 1."""

    async def scenario() -> tables.Run | None:
        db = Database(world)
        await setup_run(db, **before)
        claimed = await RunQueue(db).claim("w1", time.time(), 30)
        await db.dispose()
        return claimed

    claimed = asyncio.run(scenario())
    status, started_at = after
    assert claimed is not None and claimed.status == status and claimed.attempts == before.get("attempts", 0) + 1
    if started_at == "started now":
        assert abs(claimed.started_at - now()) <= 2
    else:
        assert claimed.started_at == started_at
