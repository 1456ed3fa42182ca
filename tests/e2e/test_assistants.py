"""Assistants through the official SDK against the real server."""

from __future__ import annotations

import openai
import pytest
from openai.types.beta import Assistant, AssistantDeleted

FULL = dict(
    model="gpt-4o",
    name="Support bot",
    description="Answers questions",
    instructions="Be brief.",
    tools=[
        {"type": "code_interpreter"},
        {"type": "file_search", "file_search": {"max_num_results": 5, "ranking_options": {"score_threshold": 0.2}}},
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": True,
            },
        },
    ],
    metadata={"team": "support", "tier": "gold"},
    temperature=0,
    top_p=0.5,
    response_format={
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    },
    reasoning_effort="low",
)


@pytest.fixture(scope="module")
def store_id(client: openai.OpenAI) -> str:
    return client.vector_stores.create(name="assistant resources").id


@pytest.fixture(scope="module")
def data_file(client: openai.OpenAI) -> str:
    return client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants").id


def full(store_id: str, file_id: str) -> dict:
    """FULL, with tool resources that name a real vector store and a real file."""
    resources = {"code_interpreter": {"file_ids": [file_id]}, "file_search": {"vector_store_ids": [store_id]}}
    return {**FULL, "tool_resources": resources}


def test_create_echoes_every_field(client: openai.OpenAI, store_id: str, data_file: str) -> None:
    created = client.beta.assistants.create(**full(store_id, data_file))
    assert isinstance(created, Assistant)
    assert created.id.startswith("asst_") and created.object == "assistant"
    assert created.model == "gpt-4o" and created.name == "Support bot"
    assert created.description == "Answers questions" and created.instructions == "Be brief."
    assert [tool.type for tool in created.tools] == ["code_interpreter", "file_search", "function"]
    assert created.tools[1].file_search.max_num_results == 5
    assert created.tools[1].file_search.ranking_options.score_threshold == 0.2
    assert created.tools[2].function.name == "get_weather" and created.tools[2].function.strict is True
    assert created.tools[2].function.parameters["required"] == ["city"]
    assert created.tool_resources.code_interpreter.file_ids == [data_file]
    assert created.tool_resources.file_search.vector_store_ids == [store_id]
    assert created.metadata == {"team": "support", "tier": "gold"}
    assert created.temperature == 0, "temperature 0 must not be dropped"
    assert created.top_p == 0.5
    assert created.response_format.type == "json_schema"
    assert created.response_format.json_schema.name == "answer"
    assert created.response_format.json_schema.schema_ == {"type": "object"}
    assert created.model_extra.get("reasoning_effort") == "low"
    assert isinstance(created.created_at, int)
    assert client.beta.assistants.retrieve(created.id) == created


def test_minimal_create_has_defaults(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="local")
    assert created.tools == [] and created.metadata == {} and created.name is None
    assert created.temperature is None and created.response_format is None


@pytest.mark.parametrize("response_format", ["auto", {"type": "text"}, {"type": "json_object"}])
def test_response_format_variants(client: openai.OpenAI, response_format) -> None:
    created = client.beta.assistants.create(model="local", response_format=response_format)
    fetched = client.beta.assistants.retrieve(created.id)
    expected = response_format if isinstance(response_format, str) else response_format["type"]
    got = fetched.response_format if isinstance(fetched.response_format, str) else fetched.response_format.type
    assert got == expected


def test_modify_changes_only_given_fields(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(**FULL)
    modified = client.beta.assistants.update(
        created.id, name="Renamed", metadata={"new": "1"}, temperature=1.5, tools=[]
    )
    assert modified.name == "Renamed" and modified.metadata == {"new": "1"}
    assert modified.temperature == 1.5 and modified.tools == []
    assert modified.instructions == "Be brief." and modified.model == "gpt-4o" and modified.top_p == 0.5
    assert client.beta.assistants.retrieve(created.id) == modified
    cleared = client.beta.assistants.update(created.id, instructions=None, temperature=None)
    assert cleared.instructions is None and cleared.temperature is None and cleared.name == "Renamed"


def test_delete_then_not_found(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="local")
    deleted = client.beta.assistants.delete(created.id)
    assert isinstance(deleted, AssistantDeleted)
    assert deleted.deleted is True and deleted.id == created.id and deleted.object == "assistant.deleted"
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.assistants.retrieve(created.id)
    assert created.id in info.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.update(created.id, name="x")


def test_list_contains_created_in_order(client: openai.OpenAI) -> None:
    ids = [client.beta.assistants.create(model="local", name=f"n{i}").id for i in range(3)]
    newest_first = client.beta.assistants.list(limit=3)
    assert [a.id for a in newest_first.data] == ids[::-1]
    assert newest_first.first_id == ids[-1] and newest_first.last_id == ids[0]


def test_the_app_extension_field_is_checked_and_copied_onto_runs(client: openai.OpenAI) -> None:
    """`app` names a preset (or none); an unknown name is a 400 on `app`; a run takes its assistant's app when it
    is created, and later edits of the assistant (metadata included) leave that run's alone; the metadata at
    creation still names one, as earlier versions read it."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.assistants.create(model="gpt-4o", extra_body={"app": "no-such-app"})
    assert refused.value.body["param"] == "app"
    assistant = client.beta.assistants.create(model="gpt-4o", extra_body={"app": "summarizer"})
    assert assistant.model_extra["app"] == "summarizer"
    assert client.beta.assistants.create(model="gpt-4o").model_extra["app"] is None
    # code written for earlier versions named the preset in the metadata at creation: it still gets it
    legacy = client.beta.assistants.create(model="gpt-4o", metadata={"assistd_app": "translator"})
    assert legacy.model_extra["app"] == "translator"
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=1)
    assert run.model_extra["app"] == "summarizer"
    changed = client.beta.assistants.update(
        assistant.id, metadata={"assistd_app": "translator"}, extra_body={"app": None}
    )
    assert changed.model_extra["app"] is None and changed.metadata == {"assistd_app": "translator"}
    again = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert again.model_extra["app"] == "summarizer"
    client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=100)
