"""Code written for OpenAI runs unchanged: OpenAI's model names, function calling that ends, and structured
outputs from pydantic models. Real server, real bundled model, official SDK. (OpenAI's Assistants quickstarts run
on a deterministic model in test_run_protocol, where their output can be asserted exactly.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import openai
import pytest
from openai.types.beta.threads import Run

from tests.server import ServerProcess
from tests.structured import CalendarEvent, Query

# the real model through the SDK's helpers (structured outputs, forced calls at the default temperature): what
# they assert is the model's and the SDK's behaviour, and the run paths they take are covered scaled out by
# test_runs and test_examples, so the PostgreSQL pass skips them
pytestmark = pytest.mark.backend_independent

FORCED_TRIALS = 20
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "The city, e.g. Paris"}},
            "required": ["location"],
        },
    },
}


def test_the_seed_sample_runs_verbatim_on_a_fresh_server(tmp_path) -> None:
    """The classic engines sample, as written for OpenAI: only the URL and the key changed."""
    server = ServerProcess(tmp_path / "fresh").start()
    try:
        key = (tmp_path / "fresh" / "api_key").read_text().strip()
        sample = textwrap.dedent(
            f"""
            import requests

            API_KEY = {key!r}
            headers = {{"Authorization": f"Bearer {{API_KEY}}"}}
            data = {{"model": "gpt-3.5-turbo", "prompt": "What is the capital of France?", "max_tokens": 50}}
            response = requests.post(
                "{server.base_url}/v1/engines/davinci-codex/completions", headers=headers, json=data
            )
            print(response.json()["choices"][0]["text"])
            """
        )
        result = subprocess.run([sys.executable, "-c", sample], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip(), "the sample printed no answer"
        log = server.log_text()
        assert "gpt-*" in log and "davinci*" in log and "→ smollm2-135m-instruct" in log, "start-up names aliases"
    finally:
        server.stop()


def test_openai_model_names_resolve_and_objects_keep_them(client: openai.OpenAI) -> None:
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("claude-3-opus")
    chat = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
    )
    assert chat.model == "gpt-4o-mini" and chat.choices[0].message.content
    legacy = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon a time", max_tokens=5)
    assert legacy.model == "gpt-3.5-turbo-instruct" and legacy.choices[0].text
    for name in ("text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large"):
        embedded = client.embeddings.create(model=name, input="The cat sits on the mat.")
        assert embedded.model == name and len(embedded.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=1536)
    assert info.value.param == "dimensions" and "384" in info.value.message


def _forced_run(client: openai.OpenAI, assistant_id: str, trial: int) -> tuple[Run, openai.types.beta.Thread]:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"What is the weather like in city number {trial}?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant_id,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert run.status == "requires_action", run.last_error
    return run, thread


def _outputs(run: Run) -> list[dict[str, str]]:
    return [
        {"tool_call_id": call.id, "output": json.dumps({"temperature": 22, "sky": "sunny"})}
        for call in run.required_action.submit_tool_outputs.tool_calls
    ]


def test_forced_function_calls_end_with_a_text_answer(client: openai.OpenAI) -> None:
    """The documented flow at the bundled model's default temperature: every run completes with a text reply."""
    assistant = client.beta.assistants.create(model="gpt-4o", name="weather", tools=[WEATHER_TOOL])
    outcomes = []
    for trial in range(FORCED_TRIALS):
        run, thread = _forced_run(client, assistant.id, trial)
        done = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id, thread_id=thread.id, tool_outputs=_outputs(run)
        )
        reply = client.beta.threads.messages.list(thread.id).data[0]
        outcomes.append((done.status, reply.role, bool(reply.content and reply.content[0].text.value.strip())))
    assert outcomes == [("completed", "assistant", True)] * FORCED_TRIALS


def test_forced_function_calls_end_through_the_stream_helper(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", name="weather", tools=[WEATHER_TOOL])
    outcomes = []
    for trial in range(FORCED_TRIALS):
        run, thread = _forced_run(client, assistant.id, trial)
        with client.beta.threads.runs.submit_tool_outputs_stream(
            run_id=run.id, thread_id=thread.id, tool_outputs=_outputs(run)
        ) as stream:
            text = "".join(stream.text_deltas)
        final = stream.get_final_run()
        outcomes.append((final.status, bool(text.strip())))
    assert outcomes == [("completed", True)] * FORCED_TRIALS


MESSAGES = [
    {"role": "system", "content": "Extract the event information."},
    {"role": "user", "content": "Alice and Bob are going to a science fair on Friday."},
]
QUERY_MESSAGES = [{"role": "user", "content": "Find the orders of customer 42 placed after 2020, ten at most."}]
# Default temperature, a fixed seed: a 135M model may ramble inside a string until max_tokens cuts the JSON off
# (then the SDK rightly raises LengthFinishReasonError); the grammar makes whatever ends valid.
SAMPLING = {"max_tokens": 1000, "seed": 3}


def test_structured_outputs_parse_into_pydantic_models(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="gpt-4o-2024-08-06", messages=MESSAGES, response_format=CalendarEvent, **SAMPLING
    )
    assert isinstance(completion.choices[0].message.parsed, CalendarEvent)
    nested = client.chat.completions.parse(model="gpt-4o", messages=QUERY_MESSAGES, response_format=Query, **SAMPLING)
    parsed = nested.choices[0].message.parsed
    assert isinstance(parsed, Query) and 1 <= parsed.limit <= 100
    with client.chat.completions.stream(
        model="gpt-4o", messages=QUERY_MESSAGES, response_format=Query, **SAMPLING
    ) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Query)


def test_pydantic_function_tools_with_nested_models_and_enums(client: openai.OpenAI) -> None:
    tools = [openai.pydantic_function_tool(Query), openai.pydantic_function_tool(CalendarEvent)]
    completion = client.chat.completions.parse(
        model="gpt-4o", messages=QUERY_MESSAGES, tools=tools, tool_choice="required", **SAMPLING
    )
    call = completion.choices[0].message.tool_calls[0]
    assert isinstance(call.function.parsed_arguments, Query | CalendarEvent)
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=QUERY_MESSAGES,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "Query"}},
        **SAMPLING,
    ) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.tool_calls[0].function.parsed_arguments, Query)
    assistant = client.beta.assistants.create(model="gpt-4o", tools=tools)
    thread = client.beta.threads.create(messages=QUERY_MESSAGES)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "function", "function": {"name": "Query"}},
        max_completion_tokens=1000,
    )
    assert run.status == "requires_action", run.last_error
    Query.model_validate_json(run.required_action.submit_tool_outputs.tool_calls[0].function.arguments)


def test_a_schema_that_cannot_be_enforced_is_a_400_naming_the_keyword(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "tags?"}],
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
        )
    assert "uniqueItems" in info.value.message and info.value.param == "response_format"


def test_a_run_with_an_unenforceable_tool_schema_is_a_400_before_it_is_queued(client: openai.OpenAI) -> None:
    parameters = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}}
    tool = {"type": "function", "function": {"name": "pick", "parameters": parameters}}
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[tool])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Pick a number."}])
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert info.value.param == "tools" and "multipleOf" in info.value.message
    assert client.beta.threads.runs.list(thread.id).data == [], "a refused run writes nothing"


def test_schemas_with_huge_bounds_are_answered_or_refused(client: openai.OpenAI) -> None:
    """Bounds that once grew the grammar without end, or made llama.cpp refuse it and the process die."""

    def ask(schema: dict) -> str | None:
        return (
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "Write a word."}],
                max_tokens=30,
                response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
            )
            .choices[0]
            .message.content
        )

    assert ask({"type": "string", "maxLength": 10**9}).startswith('"')
    assert ask({"type": "array", "items": {"type": "string", "maxLength": 10**6}, "maxItems": 10**6}).startswith("[")
    for schema in ({"type": "string", "minLength": 10**9}, {"enum": list(range(5000))}):
        with pytest.raises(openai.BadRequestError) as info:
            ask(schema)
        assert info.value.param == "response_format"
    assert client.models.retrieve("gpt-4o").id == "gpt-4o", "the server is still up"
