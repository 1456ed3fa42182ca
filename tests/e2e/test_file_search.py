"""The file_search tool in runs, end to end on the bundled model: the answer that only an uploaded document
holds comes back with a file_search step and a citation to that document."""

from __future__ import annotations

import openai
import pytest
from openai.lib.streaming import AssistantEventHandler

from tests.e2e.test_models import CHAT_MODEL

SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
ZEPHYR = b"# Project Zephyr\n\nThe launch code for Project Zephyr is 7-4-1-9. It was chosen by Dana Okafor in 2019.\n"
DISTRACTOR = b"Bananas are yellow fruit rich in potassium. Apples grow in orchards in cool climates.\n"
QUESTION = "What is the launch code for Project Zephyr?"


@pytest.fixture(scope="module")
def documents(client: openai.OpenAI) -> dict[str, str]:
    return {
        "zephyr": client.files.create(file=("zephyr.md", ZEPHYR), purpose="assistants").id,
        "fruit": client.files.create(file=("fruit.txt", DISTRACTOR), purpose="assistants").id,
    }


@pytest.fixture(scope="module")
def searcher(client: openai.OpenAI, documents) -> openai.types.beta.Assistant:
    store = client.vector_stores.create(name="zephyr kb", file_ids=list(documents.values()))
    return client.beta.assistants.create(
        model=CHAT_MODEL,
        instructions="You are a helpful assistant.",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        temperature=0,
    )


def assert_cites(message, file_id: str) -> None:
    text = message.content[0].text
    citations = [a for a in text.annotations if a.type == "file_citation"]
    assert [c.file_citation.file_id for c in citations] == [file_id], text
    for citation in citations:
        assert text.value[citation.start_index : citation.end_index] == citation.text


def test_run_cites_the_document_that_answers(client: openai.OpenAI, searcher, documents) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=searcher.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    reply = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert "7-4-1-9" in reply.content[0].text.value
    assert_cites(reply, documents["zephyr"])

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    (call,) = steps[0].step_details.tool_calls
    assert call.type == "file_search"
    results = call.file_search.results
    assert results[0].file_id == documents["zephyr"] and results[0].file_name == "zephyr.md"
    assert all(r.content is None for r in results)  # passages only when asked for
    detailed = client.beta.threads.runs.steps.retrieve(
        steps[0].id, thread_id=thread.id, run_id=run.id, include=[SEARCH_CONTENT]
    )
    assert "7-4-1-9" in detailed.step_details.tool_calls[0].file_search.results[0].content[0].text


def test_streamed_run_carries_the_citation(client: openai.OpenAI, searcher, documents) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
    deltas: list[str] = []

    class Handler(AssistantEventHandler):
        def on_text_delta(self, delta, snapshot) -> None:
            deltas.append(delta.value or "")

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=searcher.id, event_handler=Handler()
    ) as stream:
        events = [event.event for event in stream]
        final = stream.get_final_messages()[0]
    assert events.index("thread.run.step.created") < events.index("thread.message.created")
    assert "".join(deltas) == final.content[0].text.value
    assert_cites(final, documents["zephyr"])
    stored = client.beta.threads.messages.retrieve(final.id, thread_id=thread.id)
    assert stored.content[0].text == final.content[0].text


def test_attachments_make_the_thread_store(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("zephyr.md", ZEPHYR), purpose="assistants").id
    assistant = client.beta.assistants.create(model=CHAT_MODEL, tools=[{"type": "file_search"}], temperature=0)
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(
        thread.id, role="user", content=QUESTION, attachments=[{"file_id": file_id, "tools": [{"type": "file_search"}]}]
    )
    (store_id,) = client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.file_counts.total == 1 and store.expires_after.days == 7
    # the run waits for the attachment to be ingested, then finds it
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert_cites(client.beta.threads.messages.list(thread.id).data[0], file_id)


def test_tool_resources_can_create_a_store(client: openai.OpenAI, documents) -> None:
    thread = client.beta.threads.create(
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [documents["fruit"]], "metadata": {"k": "v"}}]}}
    )
    (store_id,) = thread.tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.metadata == {"k": "v"} and store.file_counts.total == 1
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.create(
            tool_resources={"file_search": {"vector_stores": [{"file_ids": ["file-01m87qkskz3xcchjdtssz8p73q"]}]}}
        )
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.create(
            model=CHAT_MODEL, tool_resources={"file_search": {"vector_store_ids": ["vs_01m87qkskz3xcchjdtssz8p73q"]}}
        )


def test_citations_only_name_retrieved_files(client: openai.OpenAI, searcher, documents) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What colour are bananas?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=searcher.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    reply = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    for citation in reply.content[0].text.annotations:
        assert citation.file_citation.file_id == documents["fruit"]  # never the unrelated Zephyr document
