"""Models through the official SDK against the real server and the real bundled models (no fakes)."""

from __future__ import annotations

import json
import math
import time

import jsonschema
import openai
import pytest
import requests
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion

# chat and legacy completions, embeddings, models: routes that store nothing but usage, so the PostgreSQL pass
# skips them
pytestmark = pytest.mark.backend_independent

CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
TRIALS = 20

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a timezone",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
                "additionalProperties": False,
            },
        },
    },
]
PARAMETERS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in WEATHER_TOOLS}

# An answer that cannot end early: the grammar demands 400 numbers (well over a thousand tokens).
LONG_ANSWER = {
    "type": "json_schema",
    "json_schema": {"name": "numbers", "schema": {"type": "array", "minItems": 400, "items": {"type": "integer"}}},
}

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "languages"],
    "additionalProperties": False,
}


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {CHAT_MODEL, EMBEDDING_MODEL} <= ids
    model = client.models.retrieve(CHAT_MODEL)
    assert isinstance(model, Model) and model.id == CHAT_MODEL and model.object == "model"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


def test_chat_blocking(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_tokens=40,
    )
    assert isinstance(completion, ChatCompletion) and completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 41
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_concatenates_and_reports_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name three colours."}]
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=messages,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    blocking = client.chat.completions.create(model=CHAT_MODEL, messages=messages, max_tokens=30, temperature=0)
    assert text == blocking.choices[0].message.content, "temperature 0 is greedy: streamed and blocking agree"
    assert chunks[-1].usage.completion_tokens == blocking.usage.completion_tokens


def test_stream_without_usage_option_has_no_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5, stream=True
        )
    )
    assert all(getattr(c, "usage", None) is None for c in chunks) and chunks[-1].choices[0].finish_reason


def test_temperature_zero_is_deterministic_and_seed_repeats(client: openai.OpenAI) -> None:
    ask = dict(model=CHAT_MODEL, messages=[{"role": "user", "content": "Write a line about the sea."}], max_tokens=25)
    greedy = {client.chat.completions.create(**ask, temperature=0).choices[0].message.content for _ in range(3)}
    assert len(greedy) == 1
    seeded = {
        client.chat.completions.create(**ask, temperature=1.2, seed=7).choices[0].message.content for _ in range(2)
    }
    assert len(seeded) == 1


def test_n_choices_and_stop(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Count: 1, 2, 3, 4, 5, 6"}],
        max_tokens=30,
        n=2,
        stop=[","],
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert all("," not in (c.message.content or "") for c in completion.choices)


def test_tool_calls_required_always_valid(client: openai.OpenAI) -> None:
    for trial in range(TRIALS):
        completion = client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": f"What's the weather in city number {trial} in Celsius?"}],
            tools=WEATHER_TOOLS,
            tool_choice="required",
            temperature=0.8,
            max_tokens=300,
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        call = choice.message.tool_calls[0]
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in PARAMETERS
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


def test_named_tool_choice_and_streamed_call(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
            tools=WEATHER_TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            stream=True,
            max_tokens=120,
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_time" and deltas[0].id.startswith("call_")
    arguments = "".join(d.function.arguments or "" for d in deltas)
    jsonschema.validate(json.loads(arguments), PARAMETERS["get_time"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_choice_auto_never_malformed(client: openai.OpenAI) -> None:
    prompts = ["What's the weather in Rome?", "Tell me a joke.", "What time is it in Berlin?", "Hello!"]
    for prompt in prompts:
        message = (
            client.chat.completions.create(
                model=CHAT_MODEL,
                messages=[{"role": "user", "content": prompt}],
                tools=WEATHER_TOOLS,
                max_tokens=80,
            )
            .choices[0]
            .message
        )
        for call in message.tool_calls or []:
            jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])
        assert message.tool_calls or message.content


def test_tool_results_round_trip(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {"role": "user", "content": "What's the weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "c"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 3, "sky": "snow"}'},
        ],
        tools=WEATHER_TOOLS,
        tool_choice="none",
        max_tokens=40,
    )
    assert completion.choices[0].message.content and not completion.choices[0].message.tool_calls


def test_json_schema_always_valid(client: openai.OpenAI) -> None:
    for trial in range(TRIALS):
        completion = client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": f"Invent person number {trial} as JSON."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
            },
            temperature=0.8,
            max_tokens=200,
        )
        assert completion.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(completion.choices[0].message.content), PERSON_SCHEMA)


def test_json_object_mode(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Describe a cat as a JSON object."}],
        response_format={"type": "json_object"},
        max_tokens=150,
    )
    if completion.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_context_length_exceeded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "hello " * 9000}], max_tokens=5
        )
    assert info.value.code == "context_length_exceeded" and info.value.param == "messages"


@pytest.mark.parametrize(
    "change,status",
    [
        ({"model": "no-such-model"}, 404),
        ({"model": EMBEDDING_MODEL}, 400),
        ({"temperature": 3}, 400),
        ({"messages": []}, 400),
        ({"tool_choice": "required"}, 400),
        ({"n": 50}, 400),
        ({"logprobs": True}, 400),
    ],
)
def test_chat_rejects(http, change, status) -> None:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **change}
    assert http.post("/v1/chat/completions", json=body).status_code == status


def test_legacy_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=CHAT_MODEL, prompt="The capital of France is", max_tokens=12)
    assert isinstance(completion, Completion) and completion.object == "text_completion"
    assert completion.choices[0].text and completion.usage.completion_tokens <= 12
    echoed = client.completions.create(model=CHAT_MODEL, prompt="Once upon", max_tokens=3, echo=True, temperature=0)
    assert echoed.choices[0].text.startswith("Once upon")
    batch = client.completions.create(model=CHAT_MODEL, prompt=["One", "Two"], max_tokens=3, n=2)
    assert [c.index for c in batch.choices] == [0, 1, 2, 3]
    streamed = list(
        client.completions.create(model=CHAT_MODEL, prompt="Roses are", max_tokens=8, stream=True, temperature=0)
    )
    blocking = client.completions.create(model=CHAT_MODEL, prompt="Roses are", max_tokens=8, temperature=0)
    assert "".join(c.choices[0].text for c in streamed) == blocking.choices[0].text


def test_classic_engines_script(env) -> None:
    """The pre-2023 client code, verbatim apart from the URL and key."""
    base, key = env.base_url, env.key_a
    text = requests.post(
        base + f"/v1/engines/{CHAT_MODEL}/completions",
        headers={"Authorization": "Bearer " + key},
        json={"model": CHAT_MODEL, "prompt": "What is the capital of France?", "max_tokens": 50},
        timeout=60,
    ).json()["choices"][0]["text"]
    assert isinstance(text, str) and text.strip()
    without_model = requests.post(
        base + f"/v1/engines/{CHAT_MODEL}/completions",
        headers={"Authorization": "Bearer " + key},
        json={"prompt": "Hello", "max_tokens": 5},
        timeout=60,
    )
    assert without_model.status_code == 200 and without_model.json()["model"] == CHAT_MODEL


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings(client: openai.OpenAI) -> None:
    sentences = [
        "The cat sits on the mat.",
        "A kitten is resting on a rug.",
        "Quarterly revenue grew by 8%.",
        "The cat sits on the mat.",
    ]
    response = client.embeddings.create(model=EMBEDDING_MODEL, input=sentences)  # the SDK asks for base64
    assert isinstance(response, CreateEmbeddingResponse) and response.model == EMBEDDING_MODEL
    vectors = [item.embedding for item in response.data]
    assert [item.index for item in response.data] == [0, 1, 2, 3]
    assert all(len(vector) == 384 for vector in vectors)
    assert cosine(vectors[0], vectors[3]) == pytest.approx(1.0, abs=1e-5)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert response.usage.prompt_tokens > 0 and response.usage.total_tokens == response.usage.prompt_tokens
    as_floats = client.embeddings.create(
        model=EMBEDDING_MODEL, input="The cat sits on the mat.", encoding_format="float"
    )
    assert cosine(as_floats.data[0].embedding, vectors[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "change,status",
    [
        ({"model": CHAT_MODEL}, 400),
        ({"dimensions": 64}, 400),
        ({"input": []}, 400),
        ({"input": [[1, 2]]}, 400),
        ({"encoding_format": "hex"}, 400),
        ({"model": "nope"}, 404),
    ],
)
def test_embeddings_reject(http, change, status) -> None:
    body = {"model": EMBEDDING_MODEL, "input": "hello", **change}
    assert http.post("/v1/embeddings", json=body).status_code == status


def test_client_disconnect_stops_generation(env) -> None:
    """Closing a stream mid-way stops the model at its next token instead of generating to max_tokens."""
    import httpx

    body = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "List numbers."}],
        "max_tokens": 4000,
        "stream": True,
        "response_format": LONG_ANSWER,
    }
    headers = {"Authorization": f"Bearer {env.key_a}"}
    with httpx.stream("POST", f"{env.base_url}/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        lines = r.iter_lines()
        received = [next(lines) for _ in range(12)]
    assert any(line.startswith("data: ") for line in received)
    deadline = time.monotonic() + 30
    while "nobody is listening" not in env.server.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped = [line for line in env.server.log_text().splitlines() if "nobody is listening" in line]
    assert stopped, "the generation was not stopped"
    tokens = int(stopped[-1].split(" after ")[1].split()[0])
    assert tokens < 4000
