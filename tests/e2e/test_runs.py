"""Runs through the official SDK against the real server and the real bundled model."""

from __future__ import annotations

import json
import time

import httpx
import jsonschema
import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta.threads import Run
from openai.types.beta.threads.runs import RunStep

from tests.e2e.test_models import CHAT_MODEL, LONG_ANSWER, PARAMETERS, WEATHER_TOOLS


@pytest.fixture(scope="module")
def assistant(client):
    return client.beta.assistants.create(model=CHAT_MODEL, name="runner", instructions="You answer briefly.")


@pytest.fixture(scope="module")
def tool_assistant(client):
    return client.beta.assistants.create(model=CHAT_MODEL, name="tools", tools=WEATHER_TOOLS, temperature=0)


def wait_terminal(client, thread_id: str, run_id: str, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in ("completed", "incomplete", "failed", "cancelled", "expired"):
            return run
        time.sleep(0.2)
    pytest.fail(f"run {run_id} did not finish")


def test_create_and_poll_completes_with_a_reply(client, assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the capital of France?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert isinstance(run, Run) and run.status == "completed"
    assert run.model == CHAT_MODEL and run.instructions == "You answer briefly." and run.thread_id == thread.id
    assert run.started_at and run.completed_at and run.usage.completion_tokens > 0 and run.usage.prompt_tokens > 0
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.role == "assistant" and reply.status == "completed" and reply.content[0].text.value
    assert reply.run_id == run.id and reply.assistant_id == assistant.id
    assert [m.id for m in client.beta.threads.messages.list(thread.id, run_id=run.id).data] == [reply.id]
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [run.id]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert len(steps) == 1 and isinstance(steps[0], RunStep)
    assert steps[0].type == "message_creation" and steps[0].status == "completed"
    assert steps[0].step_details.message_creation.message_id == reply.id
    assert client.beta.threads.runs.steps.retrieve(steps[0].id, thread_id=thread.id, run_id=run.id) == steps[0]
    raw = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)
    assert int(raw.headers["openai-poll-after-ms"]) > 0


def test_create_and_run_poll_with_overrides(client, assistant) -> None:
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Name a fruit."}], "metadata": {"k": "v"}},
        instructions="You are a grocer.",
        temperature=0,
        metadata={"run": "1"},
    )
    assert run.status == "completed" and run.instructions == "You are a grocer." and run.temperature == 0
    assert run.metadata == {"run": "1"}
    assert client.beta.threads.retrieve(run.thread_id).metadata == {"k": "v"}
    modified = client.beta.threads.runs.update(run.id, thread_id=run.thread_id, metadata={"run": "2"})
    assert modified.metadata == {"run": "2"}


def test_additional_instructions_and_messages(client, assistant) -> None:
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_instructions="Answer in French.",
        additional_messages=[{"role": "user", "content": "Say hello."}],
    )
    assert run.instructions == "You answer briefly.\n\nAnswer in French."
    assert [m.role for m in client.beta.threads.messages.list(thread.id, order="asc").data] == ["user", "assistant"]


def test_max_completion_tokens_makes_the_run_incomplete(client, assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Write a long poem about the sea."}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=4
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 4
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_tokens"


def test_function_calling_round_trip(client, tool_assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice="required"
    )
    assert run.status == "requires_action" and run.expires_at > run.created_at
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert calls and calls[0].function.name in PARAMETERS
    jsonschema.validate(json.loads(calls[0].function.arguments), PARAMETERS[calls[0].function.name])

    # while it waits: the thread is busy
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread.id, role="user", content="hello?")
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=tool_assistant.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_other", "output": "x"}]
        )
    assert info.value.param == "tool_outputs"

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": '{"sky": "sunny", "celsius": 25}'} for call in calls],
    )
    assert done.status == "completed" and done.required_action is None
    assert done.usage.prompt_tokens > run.usage.prompt_tokens
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].step_details.tool_calls[0].function.output == '{"sky": "sunny", "celsius": 25}'
    assert client.beta.threads.messages.list(thread.id).data[0].role == "assistant"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_cancel_a_waiting_run_and_a_generating_run(client, tool_assistant, assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Rome?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice="required"
    )
    assert run.status == "requires_action"
    assert client.beta.threads.runs.cancel(run.id, thread_id=thread.id).status == "cancelled"

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "List numbers."}])
    run = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=3000, response_format=LONG_ANSWER
    )
    while client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "queued":
        time.sleep(0.05)
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = wait_terminal(client, thread.id, run.id)
    assert final.status == "cancelled" and final.cancelled_at
    messages = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert all(m.status == "incomplete" and m.incomplete_details.reason == "run_cancelled" for m in messages)
    # the thread is free again
    client.beta.threads.messages.create(thread.id, role="user", content="Never mind.")


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.text = ""

    def on_event(self, event) -> None:
        self.events.append(event.event)

    def on_text_delta(self, delta, snapshot) -> None:
        self.text += delta.value or ""


def assert_message_flow(events: list[str]) -> None:
    start = events.index("thread.run.step.created")
    assert events[start : start + 4] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
    ]
    deltas = [i for i, name in enumerate(events) if name == "thread.message.delta"]
    assert deltas and deltas[0] == start + 4 and deltas == list(range(deltas[0], deltas[-1] + 1))
    assert events[deltas[-1] + 1 :] == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]


def test_stream_with_an_event_handler(client, assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say something nice."}])
    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler) as s:
        s.until_done()
        final_run = s.get_final_run()
        final_messages = s.get_final_messages()
    assert handler.events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert_message_flow(handler.events)
    assert final_run.status == "completed"
    stored = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
    assert handler.text == stored == final_messages[0].content[0].text.value


def test_streamed_tool_outputs_and_create_and_run(client, tool_assistant) -> None:
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=tool_assistant.id,
        tool_choice="required",
        event_handler=handler,
        thread={"messages": [{"role": "user", "content": "Time in Tokyo?"}]},
    ) as s:
        s.until_done()
        run = s.get_final_run()
    assert handler.events[0] == "thread.created" and handler.events[-1] == "thread.run.requires_action"
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    handler = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=run.thread_id,
        event_handler=handler,
        tool_outputs=[{"tool_call_id": call.id, "output": "12:00"} for call in calls],
    ) as s:
        s.until_done()
        assert s.get_final_run().status == "completed"
    assert handler.events[:2] == ["thread.run.queued", "thread.run.in_progress"]
    assert_message_flow(handler.events)


def test_idempotency_key_makes_one_run(client, assistant, env) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    headers = {"Authorization": f"Bearer {env.key_a}", "Idempotency-Key": f"retry-{thread.id}"}
    body = {"assistant_id": assistant.id}
    first = httpx.post(f"{env.base_url}/v1/threads/{thread.id}/runs", json=body, headers=headers, timeout=30)
    second = httpx.post(f"{env.base_url}/v1/threads/{thread.id}/runs", json=body, headers=headers, timeout=30)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    wait_terminal(client, thread.id, first.json()["id"])
    assert len(client.beta.threads.runs.list(thread.id).data) == 1


def test_run_errors(client, assistant, other_client) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_missing")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, model="no-such-model")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    for attempt in (
        lambda c: c.beta.threads.runs.retrieve(run.id, thread_id=thread.id),
        lambda c: c.beta.threads.runs.list(thread.id),
        lambda c: c.beta.threads.runs.cancel(run.id, thread_id=thread.id),
        lambda c: c.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={}),
        lambda c: c.beta.threads.runs.steps.list(run.id, thread_id=thread.id),
        lambda c: c.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id),
        lambda c: c.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "x", "output": ""}]
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt(other_client)


def test_prompt_limits_drop_old_messages(client, assistant) -> None:
    filler = "This is an older message about the weather, the sea and the mountains. " * 4
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"{i}: {filler}"} for i in range(10)]
        + [{"role": "user", "content": "Now say hi."}]
    )
    full = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=5
    )
    assert full.usage.prompt_tokens > 500
    limited = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=200, max_completion_tokens=5
    )
    assert limited.status == "incomplete" and limited.incomplete_details.reason == "max_completion_tokens"
    assert limited.usage.prompt_tokens <= 200
    last_two = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        max_completion_tokens=5,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
    )
    assert last_two.truncation_strategy.last_messages == 2
    assert last_two.usage.prompt_tokens < full.usage.prompt_tokens / 3
    impossible = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=5
    )
    assert impossible.status == "incomplete" and impossible.incomplete_details.reason == "max_prompt_tokens"


def test_disconnecting_from_a_stream_does_not_stop_the_run(client, assistant, env) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me about the moon."}])
    body = {"assistant_id": assistant.id, "stream": True, "max_completion_tokens": 60}
    headers = {"Authorization": f"Bearer {env.key_a}"}
    with httpx.stream(
        "POST", f"{env.base_url}/v1/threads/{thread.id}/runs", json=body, headers=headers, timeout=60
    ) as response:
        events = []
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line)
            if len(events) == 3:
                break  # leave while the run is still going
        assert events[0] == "event: thread.run.created"
    run_id = client.beta.threads.runs.list(thread.id).data[0].id
    final = wait_terminal(client, thread.id, run_id)
    assert final.status in ("completed", "incomplete")
    assert client.beta.threads.messages.list(thread.id).data[0].run_id == run_id
