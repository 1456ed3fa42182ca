"""The stages of a run's generation pipeline, each alone: the lease keeper, prompt fitting, the run's prompt,
and the tool registry's hooks (function calls handed to the client, file_search results reused)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from assistd.engines.base import Chunk, GenerationRequest, Usage
from assistd.errors import StoreUnavailable, UpstreamError
from assistd.generation.fitting import fit, prompt_budget
from assistd.generation.pipeline import alongside
from assistd.protocol import wire
from assistd.retrieval.search import Hit
from assistd.runtime import prompt
from assistd.runtime.lease import lease_kept
from assistd.store import tables
from assistd.tools.base import Gathered
from assistd.tools.file_search import PASSAGES_INTRO, FileSearch
from assistd.tools.registry import run_tools
from tests.fakes import ScriptedEngine


def _run(**values: Any) -> tables.Run:
    defaults: dict[str, Any] = {
        "id": "run_1",
        "project_id": "proj_1",
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "model": "fake",
        "instructions": "Be brief.",
        "tools": [],
        "tool_choice": None,
        "parallel_tool_calls": True,
        "response_format": None,
        "response_language": None,
        "truncation_strategy": {"type": "auto"},
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "temperature": None,
        "top_p": None,
        "usage": None,
    }
    return tables.Run(**{**defaults, **values})


def _message(text: str, role: str = "user") -> tables.Message:
    return tables.Message(role=role, content=[{"type": "text", "text": {"value": text, "annotations": []}}])


def _step(calls: list[dict[str, Any]]) -> tables.RunStep:
    return tables.RunStep(type="tool_calls", step_details={"type": "tool_calls", "tool_calls": calls})


WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def _call(call_id: str, city: str, output: str | None) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": city, "output": output}}


class Recorded:
    """A recorder that keeps what tools ask of it."""

    def __init__(self) -> None:
        self.tool_steps: list[list[dict[str, Any]]] = []
        self.actions: list[tuple[list[dict[str, Any]], Usage]] = []

    async def add_tool_step(self, run: tables.Run, calls: list[dict[str, Any]]) -> None:
        self.tool_steps.append(calls)

    async def require_action(self, run: tables.Run, calls: list[dict[str, Any]], usage: Usage) -> None:
        self.actions.append((calls, usage))


# -- the lease keeper -----------------------------------------------------------------------------------------


def test_a_lost_lease_is_reported_once_and_a_failed_renewal_is_retried() -> None:
    answers: list[object] = [RuntimeError("store busy"), True, False]
    asked: list[float] = []
    lost: list[bool] = []

    async def renew(expires_at: float) -> bool:
        asked.append(expires_at)
        answer = answers.pop(0) if answers else True
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    async def main() -> None:
        async with lease_kept("job", renew, 0.06, lambda: lost.append(True)):
            await asyncio.sleep(0.2)

    asyncio.run(main())
    assert lost == [True]
    assert len(asked) == 3  # the failed renewal was tried again; nothing after the loss


# -- fitting ----------------------------------------------------------------------------------------------------


def test_the_budget_keeps_room_for_the_answer_and_max_prompt_tokens() -> None:
    assert prompt_budget(1000, None, None) == 750  # a quarter of the context at most
    assert prompt_budget(1000, None, 100) == 900
    assert prompt_budget(1000, 300, None) == 300
    assert prompt_budget(None, None, None) is None


def test_fitting_drops_the_oldest_turns_but_never_the_system_the_last_or_a_lone_tool_result() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": "four five"},
        {"role": "user", "content": "six seven"},
    ]
    request, tokens = asyncio.run(fit(ScriptedEngine(), GenerationRequest(messages=messages), 3))
    assert request.messages == [messages[0], messages[-1]]
    assert tokens == 3


def test_truncation_moves_in_steps_so_a_growing_thread_keeps_its_beginning() -> None:
    def thread(turns: int) -> list[dict[str, Any]]:
        return [{"role": "system", "content": "sys"}] + [{"role": "user", "content": f"m{i}"} for i in range(turns)]

    engine = ScriptedEngine()  # a token a word
    kept = []
    for turns in range(12, 20):
        request, tokens = asyncio.run(fit(engine, GenerationRequest(messages=thread(turns)), 11, step=4))
        assert tokens is not None and tokens <= 11
        kept.append(request.messages[1]["content"])
    # 12 messages need 2 dropped, 13 need 3, ...: the cut moves 4 at a time, not one message a turn
    assert kept == ["m4", "m4", "m4", "m8", "m8", "m8", "m8", "m12"]


# -- the run's prompt -------------------------------------------------------------------------------------------


def test_the_prompt_holds_instructions_language_gathered_context_thread_and_tool_rounds() -> None:
    run = _run(response_language="fr", tools=[WEATHER], tool_choice="required")
    gathered = Gathered(system=["Excerpts: ..."])
    steps = [_step([_call("call_1", '{"city": "Paris"}', "sunny")])]
    thread = [_message("Hi"), _message("Hello!", "assistant"), _message("Weather?")]
    request = prompt.build(run, thread, steps, run_tools(), gathered, max_tool_rounds=8)
    system, _, _, excerpts, user, asked, answered = request.messages
    assert system["role"] == "system" and system["content"].startswith("Be brief.") and "French" in system["content"]
    assert excerpts == {"role": "system", "content": "Excerpts: ..."}  # before the newest message, not at the top
    assert user == {"role": "user", "content": "Weather?"}
    assert asked["tool_calls"][0]["id"] == "call_1" and "output" not in asked["tool_calls"][0]["function"]
    assert answered == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert request.tools == [WEATHER]
    assert request.tool_choice == "none"  # the forced call was made: the model answers with its output


def test_gathered_passages_leave_the_beginning_of_the_thread_s_prompt_as_the_previous_run_had_it() -> None:
    run, tools = _run(tools=[{"type": "file_search"}]), run_tools()
    earlier = [_message("Hello"), _message("Hi! How can I help?", "assistant"), _message("Refunds?")]
    second = prompt.build(run, earlier, [], tools, Gathered(system=["passages for refunds"]), 8).messages
    later = [*earlier, _message("Within 30 days.", "assistant"), _message("And exchanges?")]
    third = prompt.build(run, later, [], tools, Gathered(system=["passages for exchanges"]), 8).messages
    assert len(second) == 5 and third[:3] == second[:3]  # all but the previous passages and question carry over
    assert third[-2:] == [
        {"role": "system", "content": "passages for exchanges"},
        {"role": "user", "content": "And exchanges?"},
    ]


def test_gathered_passages_lead_the_newest_message_where_the_engine_takes_no_late_system_message() -> None:
    run, tools = _run(tools=[{"type": "file_search"}]), run_tools()
    thread = [_message("Hello"), _message("Hi!", "assistant"), _message("Refunds?")]
    messages = prompt.build(run, thread, [], tools, Gathered(system=["passages"]), 8, late_system=False).messages
    assert [message["role"] for message in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "Be brief." and messages[-1]["content"] == "passages\n\nRefunds?"


@pytest.mark.parametrize(
    "thread",
    [[_message("Refunds?")], [_message("Refunds?"), _message("Let me look that up.", "assistant")]],
    ids=["the first message", "an assistant's message"],
)
def test_gathered_passages_join_the_instructions_before_a_thread_s_first_message_or_an_assistant_s(thread) -> None:
    run, tools = _run(tools=[{"type": "file_search"}]), run_tools()
    system, *rest = prompt.build(run, thread, [], tools, Gathered(system=["passages"]), 8).messages
    assert system == {"role": "system", "content": "Be brief.\n\npassages"}
    assert [message["content"] for message in rest] == [message.content[0]["text"]["value"] for message in thread]


def test_a_run_without_tools_offers_none() -> None:
    request = prompt.build(_run(), [_message("Hi")], [], run_tools(), Gathered(), max_tool_rounds=8)
    assert not request.tools and request.tool_choice is None


# -- the tool registry ------------------------------------------------------------------------------------------


def test_function_calls_go_to_the_client_unless_already_answered() -> None:
    run, recorder, tools = _run(tools=[WEATHER]), Recorded(), run_tools()
    steps = [_step([_call("call_1", '{"city": "Paris"}', "sunny")])]
    repeated = [_call("call_2", '{ "city":"Paris" }', None)]
    assert not asyncio.run(tools.take_calls(run, repeated, Usage(5, 2), steps, recorder))
    assert recorder.actions == []
    fresh = [_call("call_3", '{"city": "Rome"}', None), _call("call_4", '{"city": "Rome"}', None)]
    assert asyncio.run(tools.take_calls(run, fresh, Usage(5, 2), steps, recorder))
    [(calls, usage)] = recorder.actions
    assert [c["id"] for c in calls] == ["call_3"] and usage == Usage(5, 2)


def test_file_search_reuses_the_results_of_an_earlier_attempt_and_cites_them() -> None:
    hit = Hit(0, "", "file_1", "faq.md", "Refunds are issued within 30 days of purchase.", 0.9, {})
    run = _run(tools=[{"type": "file_search"}])
    steps = [_step([wire.file_search_call("call_1", [hit], 0.0)])]
    recorder, gathered = Recorded(), Gathered()

    class NoSearch(FileSearch):
        async def search(self, *args: Any) -> list[Hit] | None:
            raise AssertionError("searched again")

    asyncio.run(NoSearch(None, None).gather(run, steps, recorder, gathered, room=None))  # type: ignore[arg-type]
    assert recorder.tool_steps == []
    [passages] = gathered.system
    assert passages.startswith(PASSAGES_INTRO) and "faq.md" in passages
    citation = gathered.cite("Refunds are issued within 30 days.")
    assert citation is not None and citation.annotations[0]["file_citation"]["file_id"] == "file_1"


# -- a reply written while the engine reads the prompt (generation/pipeline.alongside) -------------------------


async def _engine(events: list[str], started: asyncio.Event, fail: bool = False):
    """Chunks of a fake engine that notes when it is started and when it is closed."""
    events.append("started")
    started.set()
    try:
        if fail:
            raise UpstreamError("the engine failed")
        for text in ("Hel", "lo"):
            yield Chunk(text=text)
    finally:
        events.append("closed")


def test_alongside_starts_the_engine_before_waiting_for_the_work() -> None:
    async def scenario() -> tuple[str, list[str], list[str]]:
        events: list[str] = []
        started = asyncio.Event()

        async def work() -> str:  # writes before its first wait, as a write to SQLite does
            events.append("written" if started.is_set() else "written before the engine started")
            await asyncio.sleep(0)
            return "reply"

        result, chunks = await alongside(_engine(events, started), work())
        return result, [chunk.text async for chunk in chunks], events

    result, texts, events = asyncio.run(scenario())
    assert (result, texts) == ("reply", ["Hel", "lo"])
    assert events == ["started", "written", "closed"]


def test_alongside_stops_the_engine_when_the_work_fails() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        started = asyncio.Event()

        async def work() -> str:
            await started.wait()
            raise StoreUnavailable(OSError("gone"))

        engine = _engine(events, started)  # kept: its closing is alongside's doing, not the garbage collector's
        with pytest.raises(StoreUnavailable):
            await alongside(engine, work())
        return events

    assert asyncio.run(scenario()) == ["started", "closed"]


def test_an_engine_error_comes_out_of_the_chunks_after_the_work_is_done() -> None:
    async def scenario() -> tuple[str, list[str]]:
        events: list[str] = []

        async def work() -> str:
            return "reply"

        result, chunks = await alongside(_engine(events, asyncio.Event(), fail=True), work())
        with pytest.raises(UpstreamError):
            async for _ in chunks:
                pass
        return result, events

    assert asyncio.run(scenario()) == ("reply", ["started", "closed"])
