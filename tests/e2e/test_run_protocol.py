"""The runs protocol, asserted exactly: a server of its own whose only chat model is the deterministic stub
upstream (deploy/stub_upstream.py, scripted by `say:`/`call:`/`delay:`/`fail:` lines in the user's message), driven
through the official SDK and raw SSE. Event order, SDK event-handler callbacks, tool rounds, cancel, failures,
limits and usage; what the real bundled model still proves end to end is in test_runs and the other modules."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta.threads import Run
from openai.types.beta.threads.runs import RunStep
from starlette.applications import Starlette

from deploy import stub_upstream
from tests.conftest import checked_http_client
from tests.e2e.test_models import WEATHER_TOOLS
from tests.server import ServerProcess, run_cli

STUB_MODEL = "stub"
DEFAULT_TOKENS = 8
DEFAULT_ANSWER = "".join(f"word{i} " for i in range(DEFAULT_TOKENS))
INSTRUCTIONS = "You answer briefly."
TERMINAL = ("completed", "incomplete", "failed", "cancelled", "expired")
MESSAGE_FLOW = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]
MESSAGE_END = ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]


def stub_server(data_dir: Path, stub_url: str, **settings: str) -> ServerProcess:
    """A server (not started) whose chat model `stub` (and every OpenAI name) is the stub upstream at `stub_url`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    models = data_dir / "models.toml"
    models.write_text(stub_upstream.models_file(stub_url, name=STUB_MODEL))
    return ServerProcess(data_dir, models_file=str(models), **settings)


def connect(server: ServerProcess, key: str | None = None) -> openai.OpenAI:
    """The SDK on `server`, with `key` or the server's first key."""
    key = key or (server.data_dir / "api_key").read_text().strip()
    return openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, http_client=checked_http_client()
    )


def wait_terminal(client: openai.OpenAI, thread_id: str, run_id: str, timeout: float = 120) -> Run:
    """The run once it has ended (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in TERMINAL:
            return run
        time.sleep(0.2)
    pytest.fail(f"run {run_id} did not finish")


def words(text: str) -> list[str]:
    """`text` as the stub streams it: a word and the whitespace after it a chunk."""
    return re.findall(r"\S+\s*", text)


def prompt_tokens(*texts: str) -> int:
    """What the stub counts for a prompt of these texts: one token a word."""
    return sum(len(text.split()) for text in texts)


class Recorder(AssistantEventHandler):
    """Every event's name, every callback the SDK makes (with its argument where it tells something), the text."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.callbacks: list[str] = []
        self.text = ""

    def on_event(self, event) -> None:
        self.events.append(event.event)

    def on_run_step_created(self, run_step) -> None:
        self.callbacks.append(f"step created: {run_step.type}")

    def on_run_step_done(self, run_step) -> None:
        self.callbacks.append(f"step done: {run_step.status}")

    def on_tool_call_created(self, tool_call) -> None:
        self.callbacks.append(f"tool call created: {tool_call.function.name}")

    def on_tool_call_done(self, tool_call) -> None:
        self.callbacks.append(f"tool call done: {tool_call.function.name} {tool_call.function.arguments}")

    def on_message_created(self, message) -> None:
        self.callbacks.append("message created")

    def on_message_done(self, message) -> None:
        self.callbacks.append(f"message done: {message.status}")

    def on_text_created(self, text) -> None:
        self.callbacks.append("text created")

    def on_text_delta(self, delta, snapshot) -> None:
        self.callbacks.append(f"text delta: {delta.value}")
        self.text += delta.value or ""

    def on_text_done(self, text) -> None:
        self.callbacks.append(f"text done: {text.value}")

    def on_end(self) -> None:
        self.callbacks.append("end")


def assert_message_flow(events: list[str]) -> None:
    """`events` end with one message streamed: step and message open, deltas, message, step and run complete."""
    start = events.index("thread.run.step.created")
    deltas = events[start + len(MESSAGE_FLOW) : len(events) - len(MESSAGE_END)]
    assert events[start : start + len(MESSAGE_FLOW)] == MESSAGE_FLOW
    assert deltas and set(deltas) == {"thread.message.delta"}
    assert events[len(events) - len(MESSAGE_END) :] == MESSAGE_END


@pytest.fixture(scope="module")
def stub() -> Iterator[Starlette]:
    """The stub upstream's app (its requests in `stub.state.requests`); its base URL as `stub.state.url`."""
    app = stub_upstream.create_app(DEFAULT_TOKENS, 0.0)
    with stub_upstream.serving(app) as url:
        app.state.url = url
        yield app


@pytest.fixture(scope="module")
def keys(stub, tmp_path_factory) -> Iterator[tuple[ServerProcess, str, str]]:
    """The module's server and a key for each of its two projects."""
    data_dir = tmp_path_factory.mktemp("protocol") / "data"
    data_dir.mkdir(parents=True)
    run_cli(data_dir, "projects", "create", "alpha")
    run_cli(data_dir, "projects", "create", "beta")
    key_a = run_cli(data_dir, "keys", "create", "--project", "alpha").strip()
    key_b = run_cli(data_dir, "keys", "create", "--project", "beta").strip()
    server = stub_server(data_dir, stub.state.url).start()
    try:
        yield server, key_a, key_b
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(keys) -> ServerProcess:
    return keys[0]


@pytest.fixture(scope="module")
def client(keys) -> openai.OpenAI:
    """The SDK as project alpha of the module's server."""
    return connect(keys[0], keys[1])


@pytest.fixture(scope="module")
def other_client(keys) -> openai.OpenAI:
    """The SDK as project beta of the module's server."""
    return connect(keys[0], keys[2])


@pytest.fixture(scope="module")
def assistant(client):
    return client.beta.assistants.create(model=STUB_MODEL, name="runner", instructions=INSTRUCTIONS)


@pytest.fixture(scope="module")
def tool_assistant(client):
    return client.beta.assistants.create(model=STUB_MODEL, name="tools", tools=WEATHER_TOOLS, temperature=0)


def seen_by_stub(stub: Starlette, user_text: str) -> list[dict[str, Any]]:
    """The requests the stub was sent whose last user message is `user_text`, in order."""
    return [
        body
        for body in stub.state.requests
        if [m["content"] for m in body["messages"] if m["role"] == "user"][-1:] == [user_text]
    ]


def sse(server: ServerProcess, key: str, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """The events of a streamed POST, read to the end: (name, decoded data) pairs."""
    events: list[tuple[str, Any]] = []
    name = None
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{server.base_url}/v1{path}", json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
                events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


# -- one run, streamed and polled -----------------------------------------------------------------------


def test_a_streamed_run_sends_every_event_in_order(server, keys, client, assistant, stub) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"say: {text}"}])
    events = sse(server, keys[1], f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    names = [name for name, _ in events]
    assert names == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        *MESSAGE_FLOW,
        *["thread.message.delta"] * len(words(text)),
        *MESSAGE_END,
        "done",
    ]
    data = dict(events)
    run, message, step = (
        data["thread.run.completed"],
        data["thread.message.completed"],
        data["thread.run.step.completed"],
    )
    assert events[-1] == ("done", "[DONE]")
    assert [d["delta"]["content"][0]["text"]["value"] for n, d in events if n == "thread.message.delta"] == words(text)
    assert all(d["id"] == message["id"] and d["object"] == "thread.message.delta" for n, d in events if "delta" in n)
    assert [data[name]["status"] for name in ("thread.run.created", "thread.run.queued", "thread.run.in_progress")] == [
        "queued",
        "queued",
        "in_progress",
    ]
    assert data["thread.message.created"]["content"] == [] and data["thread.message.created"]["status"] == "in_progress"
    assert message["content"][0]["text"] == {"value": text, "annotations": []} and message["status"] == "completed"
    assert step["step_details"] == {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
    assert step["status"] == "completed" and step["run_id"] == run["id"] == message["run_id"]
    tokens = {"prompt_tokens": prompt_tokens(INSTRUCTIONS, f"say: {text}"), "completion_tokens": len(words(text))}
    cached = {"prompt_tokens_details": {"cached_tokens": 0}}  # the stub caches nothing
    assert run["status"] == "completed" and run["usage"] == {**tokens, "total_tokens": sum(tokens.values()), **cached}
    assert step["usage"] == run["usage"]


def test_the_event_handler_gets_each_callback(client, assistant) -> None:
    text = "Deterministic replies make exact tests."
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"say: {text}"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler) as s:
        s.until_done()
        final_run, final_messages = s.get_final_run(), s.get_final_messages()
    assert handler.events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert_message_flow(handler.events)
    assert handler.callbacks == [
        "step created: message_creation",
        "message created",
        "text created",
        *[f"text delta: {word}" for word in words(text)],
        "text done: " + text,
        "message done: completed",
        "step done: completed",
        "end",
    ]
    assert final_run.status == "completed" and handler.text == text
    assert final_messages[0].content[0].text.value == text
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == text


def test_create_and_poll_completes_with_a_reply(client, assistant, stub) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the capital of France?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert isinstance(run, Run) and run.status == "completed"
    assert run.model == STUB_MODEL and run.instructions == INSTRUCTIONS and run.thread_id == thread.id
    assert run.started_at and run.completed_at
    assert run.usage.prompt_tokens == prompt_tokens(INSTRUCTIONS, "What is the capital of France?")
    assert run.usage.completion_tokens == DEFAULT_TOKENS
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.role == "assistant" and reply.status == "completed" and reply.content[0].text.value == DEFAULT_ANSWER
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
    (request,) = seen_by_stub(stub, "What is the capital of France?")
    assert request["messages"] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "What is the capital of France?"},
    ]


def test_create_and_run_poll_with_overrides(client, assistant, stub) -> None:
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
    (request,) = seen_by_stub(stub, "Name a fruit.")
    assert request["messages"][0] == {"role": "system", "content": "You are a grocer."}
    assert request["temperature"] == 0


def test_additional_instructions_and_messages(client, assistant, stub) -> None:
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_instructions="Answer in French.",
        additional_messages=[{"role": "user", "content": "Say hello, additionally."}],
    )
    assert run.instructions == f"{INSTRUCTIONS}\n\nAnswer in French."
    assert [m.role for m in client.beta.threads.messages.list(thread.id, order="asc").data] == ["user", "assistant"]
    (request,) = seen_by_stub(stub, "Say hello, additionally.")
    assert request["messages"][0] == {"role": "system", "content": f"{INSTRUCTIONS}\n\nAnswer in French."}


def test_truncation_strategy_sends_the_last_messages(client, assistant, stub) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"Message {i}."} for i in range(4)]
        + [{"role": "user", "content": "Last."}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
    )
    assert run.status == "completed" and run.truncation_strategy.last_messages == 2
    (request,) = seen_by_stub(stub, "Last.")
    assert [m["content"] for m in request["messages"]] == [INSTRUCTIONS, "Message 3.", "Last."]


def test_max_completion_tokens_makes_the_run_incomplete(client, assistant) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "say: one two three four five six seven"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=4
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 4
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_tokens"
    assert reply.content[0].text.value == "one two three four "


# -- function tools -------------------------------------------------------------------------------------


def test_function_calling_round_trip(client, tool_assistant, stub) -> None:
    ask = 'Weather in Paris?\ncall: get_weather {"city": "Paris", "unit": "c"}'
    thread = client.beta.threads.create(messages=[{"role": "user", "content": ask}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice="required"
    )
    assert run.status == "requires_action" and run.expires_at > run.created_at
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert (call.type, call.function.name, call.function.arguments) == (
        "function",
        "get_weather",
        '{"city": "Paris", "unit": "c"}',
    )
    assert run.usage.completion_tokens == 2

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

    output = '{"sky": "sunny", "celsius": 25}'
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": output}]
    )
    assert done.status == "completed" and done.required_action is None
    assert done.usage.prompt_tokens > run.usage.prompt_tokens
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].step_details.tool_calls[0].function.output == output
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.role == "assistant" and reply.content[0].text.value == f"Tool outputs: {output}"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    # the forced choice held for the first round only; the second round saw the call and its output
    first, second = seen_by_stub(stub, ask)
    assert (first["tool_choice"], second["tool_choice"]) == ("required", "none")
    assert second["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call.id, "type": "function", "function": call.function.model_dump()}],
        },
        {"role": "tool", "tool_call_id": call.id, "content": output},
    ]


def test_a_streamed_tool_round_as_openai_streams_it(client, tool_assistant, server, keys) -> None:
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=tool_assistant.id,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        event_handler=handler,
        thread={"messages": [{"role": "user", "content": "Time in Tokyo?"}]},
    ) as s:
        s.until_done()
        run = s.get_final_run()
    assert handler.events == [
        "thread.created",
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
    ]
    assert handler.callbacks == [
        "step created: tool_calls",
        "tool call created: get_time",
        "tool call done: get_time {}",
        "end",
    ]
    assert run.status == "requires_action"
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_time", "{}")

    events = sse(
        server,
        keys[1],
        f"/threads/{run.thread_id}/runs/{run.id}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call.id, "output": "12:00"}], "stream": True},
    )
    names = [name for name, _ in events]
    assert names[:2] == ["thread.run.queued", "thread.run.in_progress"]
    assert_message_flow(names[2:-1])
    assert names[-1] == "done"
    assert "".join(d["delta"]["content"][0]["text"]["value"] for n, d in events if n == "thread.message.delta") == (
        "Tool outputs: 12:00"
    )
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data
    assert steps[0].status == "completed" and steps[0].step_details.tool_calls[0].function.output == "12:00"


def test_a_tool_call_step_opens_empty_and_one_delta_brings_the_calls(client, tool_assistant, server, keys) -> None:
    ask = 'call: get_weather {"city": "Oslo", "unit": "c"} get_time {"timezone": "CET"}'
    thread = client.beta.threads.create(messages=[{"role": "user", "content": ask}])
    events = sse(server, keys[1], f"/threads/{thread.id}/runs", {"assistant_id": tool_assistant.id, "stream": True})
    data = dict(events)
    created, delta, waiting = (
        data["thread.run.step.created"],
        data["thread.run.step.delta"],
        data["thread.run.requires_action"],
    )
    assert created["type"] == "tool_calls" and created["status"] == "in_progress"
    assert created["step_details"] == {"type": "tool_calls", "tool_calls": []}
    calls = delta["delta"]["step_details"]["tool_calls"]
    assert delta["id"] == created["id"] and delta["object"] == "thread.run.step.delta"
    assert [(c["index"], c["type"], c["function"]) for c in calls] == [
        (0, "function", {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "c"}', "output": None}),
        (1, "function", {"name": "get_time", "arguments": '{"timezone": "CET"}', "output": None}),
    ]
    required = waiting["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [c["id"] for c in required] == [c["id"] for c in calls]
    assert events[-1] == ("done", "[DONE]")


def test_parallel_calls_get_their_outputs_together(client, tool_assistant, stub) -> None:
    ask = 'call: get_weather {"city": "Oslo", "unit": "c"} get_weather {"city": "Rome", "unit": "c"}'
    thread = client.beta.threads.create(messages=[{"role": "user", "content": ask}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tool_assistant.id)
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Oslo", "Rome"]
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "cold"}]
        )
    assert info.value.param == "tool_outputs" and "missing" in info.value.message
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": calls[1].id, "output": "warm"}, {"tool_call_id": calls[0].id, "output": "cold"}],
    )
    assert done.status == "completed"
    reply = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
    assert reply == "Tool outputs: cold; warm"
    last = seen_by_stub(stub, ask)[-1]
    assert [(m["tool_call_id"], m["content"]) for m in last["messages"] if m["role"] == "tool"] == [
        (calls[0].id, "cold"),
        (calls[1].id, "warm"),
    ]


def test_two_tool_rounds_and_the_usage_of_each(client, tool_assistant, stub) -> None:
    ask = "\n".join(
        [
            "What should I wear in Oslo at noon?",
            'call: get_weather {"city": "Oslo", "unit": "c"}',
            'call: get_time {"timezone": "Europe/Oslo"}',
            "say: Wear a coat.",
        ]
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": ask}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tool_assistant.id)
    outputs = []
    for name, output in (("get_weather", "-3 and snowing"), ("get_time", "11:58")):
        assert run.status == "requires_action"
        (call,) = run.required_action.submit_tool_outputs.tool_calls
        assert call.function.name == name
        outputs.append(output)
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": output}]
        )
    assert run.status == "completed"
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "Wear a coat."
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    assert [s.usage.completion_tokens for s in steps] == [2, 2, 3]
    requests = seen_by_stub(stub, ask)
    assert len(requests) == 3 and all(r["tools"] and r.get("tool_choice") in (None, "auto") for r in requests)
    sent = [prompt_tokens(ask), prompt_tokens(ask, outputs[0]), prompt_tokens(ask, *outputs)]
    assert [s.usage.prompt_tokens for s in steps] == sent
    assert run.usage.model_dump() == {
        "prompt_tokens": sum(sent),
        "completion_tokens": 7,
        "total_tokens": sum(sent) + 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


# -- ends other than completed --------------------------------------------------------------------------


def test_cancel_a_run_waiting_for_outputs(client, tool_assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Rome?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice="required"
    )
    assert run.status == "requires_action"
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.required_action is None and cancelled.cancelled_at
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.status == "cancelled"
    client.beta.threads.messages.create(thread.id, role="user", content="Never mind.")


def test_cancel_during_a_slow_stream(client, assistant) -> None:
    text = " ".join(f"n{i}" for i in range(40))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"say: {text}\ndelay: 0.2"}])
    handler, cancelled = Recorder(), False
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler) as s:
        for event in s:
            if event.event == "thread.message.delta" and not cancelled:
                assert client.beta.threads.runs.cancel(s.current_run.id, thread_id=thread.id).status == "cancelling"
                cancelled = True
        run = s.get_final_run()
    tail = handler.events[handler.events.index("thread.run.cancelling") + 1 :]
    assert tail[-3:] == ["thread.message.incomplete", "thread.run.step.cancelled", "thread.run.cancelled"]
    assert set(tail[:-3]) <= {"thread.message.delta"}
    assert run.status == "cancelled" and run.cancelled_at
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    assert message.content[0].text.value == handler.text and text.startswith(handler.text)
    assert len(handler.text) < len(text)
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.status == "cancelled" and step.cancelled_at
    client.beta.threads.messages.create(thread.id, role="user", content="Never mind.")  # the thread is free again


def test_a_failure_mid_stream_fails_the_run(server, keys, client, assistant) -> None:
    ask = "say: Half an answer\nfail: the accelerator fell over"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": ask}])
    events = sse(server, keys[1], f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    names = [name for name, _ in events]
    assert names[-4:] == ["thread.message.incomplete", "thread.run.step.failed", "thread.run.failed", "done"]
    assert names.count("thread.message.delta") == 3
    run = dict(events)["thread.run.failed"]
    assert run["status"] == "failed" and run["failed_at"] and run["last_error"]["code"] == "server_error"
    assert "failed mid-stream: the accelerator fell over" in run["last_error"]["message"]
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run["id"]).data
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_failed"
    assert message.content[0].text.value == "Half an answer"
    assert client.beta.threads.runs.retrieve(run["id"], thread_id=thread.id).last_error.code == "server_error"


def test_disconnecting_from_a_stream_does_not_stop_the_run(client, assistant, server, keys) -> None:
    text = " ".join(f"moon{i}" for i in range(20))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"say: {text}\ndelay: 0.05"}])
    body = {"assistant_id": assistant.id, "stream": True}
    headers = {"Authorization": f"Bearer {keys[1]}"}
    with httpx.stream(
        "POST", f"{server.base_url}/v1/threads/{thread.id}/runs", json=body, headers=headers, timeout=60
    ) as response:
        events = []
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line)
            if len(events) == 3:
                break  # leave while the run is still going
        assert events[0] == "event: thread.run.created"
    run_id = client.beta.threads.runs.list(thread.id).data[0].id
    assert wait_terminal(client, thread.id, run_id).status == "completed"
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.run_id == run_id and reply.content[0].text.value == text


# -- requests around runs -------------------------------------------------------------------------------


def test_idempotency_key_makes_one_run(client, assistant, server, keys) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    headers = {"Authorization": f"Bearer {keys[1]}", "Idempotency-Key": f"retry-{thread.id}"}
    body = {"assistant_id": assistant.id}
    first = httpx.post(f"{server.base_url}/v1/threads/{thread.id}/runs", json=body, headers=headers, timeout=30)
    second = httpx.post(f"{server.base_url}/v1/threads/{thread.id}/runs", json=body, headers=headers, timeout=30)
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


# -- OpenAI's quickstarts, unchanged --------------------------------------------------------------------


def test_the_math_tutor_quickstart_with_gpt_4_1106_preview(client) -> None:
    """OpenAI's Assistants quickstart, unchanged (code_interpreter is declared; the model answers in text)."""
    assistant = client.beta.assistants.create(
        name="Math Tutor",
        instructions="You are a personal math tutor. Write and run code to answer math questions.",
        tools=[{"type": "code_interpreter"}],
        model="gpt-4-1106-preview",
    )
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="I need to solve the equation `3x + 11 = 14`. Can you help me?"
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        instructions="Please address the user as Jane Doe. The user has a premium account.",
    )
    assert run.status == "completed", run.last_error
    assert assistant.model == run.model == "gpt-4-1106-preview"
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    assert messages.data[0].role == "assistant" and messages.data[0].content[0].text.value == DEFAULT_ANSWER


class TutorHandler(AssistantEventHandler):
    """The quickstart's streaming handler, collecting what it prints."""

    def __init__(self) -> None:
        super().__init__()
        self.printed: list[str] = []

    def on_text_created(self, text) -> None:
        self.printed.append("\nassistant > ")

    def on_text_delta(self, delta, snapshot) -> None:
        self.printed.append(delta.value)

    def on_tool_call_created(self, tool_call) -> None:
        self.printed.append(f"\nassistant > {tool_call.type}\n")


def test_the_streaming_quickstart_with_gpt_4o(client) -> None:
    assistant = client.beta.assistants.create(
        name="Math Tutor",
        instructions="You are a personal math tutor. Write and run code to answer math questions.",
        tools=[{"type": "code_interpreter"}],
        model="gpt-4o",
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 2 + 2?"}])
    handler = TutorHandler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        instructions="Please address the user as Jane Doe. The user has a premium account.",
        event_handler=handler,
    ) as stream:
        stream.until_done()
    run = stream.get_final_run()
    assert run.status == "completed" and run.model == "gpt-4o"
    assert "".join(handler.printed) == "\nassistant > " + DEFAULT_ANSWER
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == DEFAULT_ANSWER
