"""Runs on the real bundled model, end to end through the official SDK: a streamed run, a forced function call
with the arguments the grammar holds to its schema, and the prompt limits, which count the model's own tokens.
The protocol itself (event order, tool rounds, cancel, failures, usage) is asserted exactly on a deterministic
model in test_run_protocol."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.e2e.test_models import CHAT_MODEL, PARAMETERS, WEATHER_TOOLS
from tests.e2e.test_run_protocol import Recorder, assert_message_flow


@pytest.fixture(scope="module")
def assistant(client):
    return client.beta.assistants.create(model=CHAT_MODEL, name="runner", instructions="You answer briefly.")


@pytest.fixture(scope="module")
def tool_assistant(client):
    return client.beta.assistants.create(model=CHAT_MODEL, name="tools", tools=WEATHER_TOOLS, temperature=0)


def test_a_forced_function_call_round_trip(client, tool_assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice="required"
    )
    assert run.status == "requires_action", run.last_error
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert calls and calls[0].function.name in PARAMETERS
    jsonschema.validate(json.loads(calls[0].function.arguments), PARAMETERS[calls[0].function.name])
    with pytest.raises(openai.BadRequestError) as busy:  # the run waiting for outputs is still the thread's
        client.beta.threads.messages.create(thread.id, role="user", content="And in Rome?")
    assert busy.value.code == "run_active" and run.id in busy.value.message
    with pytest.raises(openai.BadRequestError) as busy:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=tool_assistant.id)
    assert busy.value.code == "run_active" and run.id in busy.value.message
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": '{"sky": "sunny", "celsius": 25}'} for call in calls],
    )
    assert done.status == "completed" and done.usage.prompt_tokens > run.usage.prompt_tokens
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert client.beta.threads.messages.list(thread.id).data[0].role == "assistant"


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
