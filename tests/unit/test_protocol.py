"""Each builder of protocol/wire.py against its typed model: what it shapes validates, and the model sends it
back unchanged (the same fields, absent ones still absent, in the same order), so routes that declare the model
answer the bytes the builder made."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from assistd.engines.base import ToolCallDelta, Usage
from assistd.engines.registry import ModelRegistry
from assistd.lifecycle import FileStatus
from assistd.protocol import wire
from assistd.protocol.assistants import Assistant, Message, MessageDelta, Run, RunStep, RunStepDelta, Thread
from assistd.protocol.common import (
    AssistantDeleted,
    ErrorBody,
    FileDeleted,
    ListPage,
    MessageDeleted,
    ThreadDeleted,
    VectorStoreDeleted,
    VectorStoreFileDeleted,
)
from assistd.protocol.common import Usage as UsageModel
from assistd.protocol.events import RUN_EVENTS
from assistd.protocol.files import (
    File,
    FileBatch,
    FileContentPage,
    SearchResultsPage,
    VectorStore,
    VectorStoreFile,
)
from assistd.protocol.generation import (
    ChatCompletion,
    ChatCompletionChunk,
    EmbeddingList,
    ModelList,
    TextCompletion,
    TextCompletionChunk,
)
from assistd.retrieval.search import Hit
from assistd.store import tables
from tests.fakes import ScriptedEngine

NOW = 1_760_000_000
TOOLS = [{"type": "file_search"}, {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def sent_unchanged(model: type[BaseModel] | Any, shaped: dict[str, Any]) -> None:
    """`shaped` validates against `model`, and serialising it as a route does (unset fields left out) gives the
    same JSON, byte for byte."""
    validated = model.model_validate(shaped)
    again = validated.model_dump(mode="json", exclude_unset=True)
    assert json.dumps(again) == json.dumps(shaped)


def assistant_row(**changes: Any) -> tables.Assistant:
    fields: dict[str, Any] = {
        "id": "asst_1",
        "created_at": NOW,
        "name": "helper",
        "description": None,
        "model": "fake",
        "instructions": "be brief",
        "tools": TOOLS,
        "tool_resources": None,
        "metadata_": {"k": "v"},
        "temperature": 0.5,
        "top_p": None,
        "response_format": "auto",
        "reasoning_effort": None,
        "response_language": "fr",
        "app": None,
    }
    return tables.Assistant(**{**fields, **changes})


def run_row(**changes: Any) -> tables.Run:
    fields: dict[str, Any] = {
        "id": "run_1",
        "created_at": NOW,
        "assistant_id": "asst_1",
        "thread_id": "thread_1",
        "status": "requires_action",
        "started_at": NOW,
        "expires_at": NOW + 600,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "required_action": wire.submit_tool_outputs(
            [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
        ),
        "last_error": None,
        "model": "fake",
        "instructions": "be brief",
        "tools": TOOLS,
        "tool_resources": {"file_search": {"vector_store_ids": ["vs_1"]}},
        "metadata_": {},
        "temperature": None,
        "top_p": 1.0,
        "max_completion_tokens": 200,
        "max_prompt_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "incomplete_details": None,
        "usage": USAGE,
        "response_format": None,
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": True,
        "response_language": None,
        "app": "summarize",
    }
    return tables.Run(**{**fields, **changes})


def step_row(**changes: Any) -> tables.RunStep:
    hit = Hit(1, "vs_1", "file_1", "a.txt", "the passage", 0.75, {})
    fields: dict[str, Any] = {
        "id": "step_1",
        "created_at": NOW,
        "run_id": "run_1",
        "assistant_id": "asst_1",
        "thread_id": "thread_1",
        "type": "tool_calls",
        "status": "completed",
        "cancelled_at": None,
        "completed_at": NOW,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "step_details": {"type": "tool_calls", "tool_calls": [wire.file_search_call("call_1", [hit], 0.0)]},
        "usage": None,
        "metadata_": {},
    }
    return tables.RunStep(**{**fields, **changes})


def message_row(**changes: Any) -> tables.Message:
    fields: dict[str, Any] = {
        "id": "msg_1",
        "created_at": NOW,
        "thread_id": "thread_1",
        "status": "completed",
        "incomplete_details": None,
        "completed_at": NOW,
        "incomplete_at": None,
        "role": "assistant",
        "content": [{"type": "text", "text": {"value": "hello", "annotations": []}}],
        "assistant_id": "asst_1",
        "run_id": "run_1",
        "attachments": None,
        "metadata_": {},
    }
    return tables.Message(**{**fields, **changes})


def counts(**changes: int) -> dict[str, int]:
    shown = {**dict.fromkeys(FileStatus, 0), **changes}
    return {**shown, "total": sum(shown.values())}


# -- the Assistants API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", [assistant_row(), assistant_row(tool_resources={"x": {}}, app="translate")])
def test_assistant(row) -> None:
    sent_unchanged(Assistant, wire.assistant(row))


def test_thread() -> None:
    sent_unchanged(Thread, wire.thread(tables.Thread(id="thread_1", created_at=NOW, metadata_={}, tool_resources=None)))


@pytest.mark.parametrize(
    "row", [message_row(), message_row(role="user", status="incomplete", attachments=[{"file_id": "file_1"}])]
)
def test_message(row) -> None:
    sent_unchanged(Message, wire.message(row))


@pytest.mark.parametrize(
    "row", [run_row(), run_row(status="queued", required_action=None, usage=None, response_format={"type": "text"})]
)
def test_run(row) -> None:
    sent_unchanged(Run, wire.run(row))


@pytest.mark.parametrize("include", [(), (wire.SEARCH_CONTENT,)])
def test_run_step(include) -> None:
    sent_unchanged(RunStep, wire.run_step(step_row(usage=USAGE), include))
    sent_unchanged(RunStep, wire.run_step(step_row(type="message_creation", status="in_progress"), include))


def test_deltas() -> None:
    annotation = {"type": "file_citation", "text": "[1]", "file_citation": {"file_id": "file_1"}}
    sent_unchanged(MessageDelta, wire.message_text_delta("msg_1", "hi", [annotation]))
    text = {"value": "hi [1]", "annotations": [{**annotation, "start_index": 3, "end_index": 6}]}
    sent_unchanged(MessageDelta, wire.message_content_delta(message_row(content=[{"type": "text", "text": text}])))
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    sent_unchanged(RunStepDelta, wire.step_tool_calls_delta("step_1", [call]))


@pytest.mark.parametrize(
    ("model", "object_type"),
    [
        (AssistantDeleted, "assistant"),
        (ThreadDeleted, "thread"),
        (MessageDeleted, "thread.message"),
        (VectorStoreDeleted, "vector_store"),
        (VectorStoreFileDeleted, "vector_store.file"),
    ],
)
def test_deleted(model, object_type) -> None:
    sent_unchanged(model, wire.deleted("x_1", object_type))


def test_lists() -> None:
    sent_unchanged(ListPage[Run], wire.list_page([wire.run(run_row()), wire.run(run_row(id="run_2"))], True))
    sent_unchanged(ListPage[Assistant], wire.list_page([], False))


def test_usage_and_error() -> None:
    sent_unchanged(UsageModel, wire.usage(Usage(10, 5)))
    sent_unchanged(ErrorBody, wire.error("Nope.", error_type="invalid_request_error", param="model", code="x"))
    sent_unchanged(ErrorBody, wire.error("Failed.", error_type="server_error"))


def test_every_run_event_has_a_model() -> None:
    names = {f"thread.run.{s}" for s in ("queued", "in_progress", "requires_action", "completed", "expired")}
    assert names <= set(RUN_EVENTS)
    assert RUN_EVENTS["thread.message.delta"] is MessageDelta and RUN_EVENTS["thread.run.step.delta"] is RunStepDelta


# -- files and vector stores --------------------------------------------------------------------------------


@pytest.mark.parametrize("expires_at", [None, NOW + 3600])
def test_file(expires_at) -> None:
    row = tables.File(
        id="file_1", created_at=NOW, filename="a.txt", purpose="assistants", bytes=12, expires_at=expires_at
    )
    sent_unchanged(File, wire.file(row))
    sent_unchanged(FileDeleted, wire.file_deleted("file_1"))


@pytest.mark.parametrize(
    ("expires_after", "moment", "file_counts"),
    [
        (None, NOW, counts()),
        ({"anchor": "last_active_at", "days": 1}, NOW, counts(in_progress=2, completed=1)),
        ({"anchor": "last_active_at", "days": 1}, NOW + 2 * 86_400, counts(failed=1)),
    ],
)
def test_vector_store(expires_after, moment, file_counts) -> None:
    row = tables.VectorStore(
        id="vs_1",
        created_at=NOW,
        name="docs",
        description=None,
        metadata_={},
        expires_after=expires_after,
        last_active_at=NOW,
    )
    sent_unchanged(VectorStore, wire.vector_store(row, file_counts, 1024, moment))


def test_vector_store_file_and_batch() -> None:
    row = tables.VectorStoreFile(
        id="file_1",
        created_at=NOW,
        vector_store_id="vs_1",
        status="failed",
        last_error={"code": "unsupported_file", "message": "no"},
        usage_bytes=0,
        attributes=None,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}},
    )
    sent_unchanged(VectorStoreFile, wire.vector_store_file(row))
    batch = tables.VectorStoreFileBatch(id="vsfb_1", created_at=NOW, vector_store_id="vs_1", cancelled_at=None)
    sent_unchanged(FileBatch, wire.file_batch(batch, counts(completed=2)))


def test_search_and_file_content() -> None:
    hits = [Hit(1, "vs_1", "file_1", "a.txt", "the passage", 0.75, {"lang": "en", "page": 3.0, "draft": False})]
    sent_unchanged(SearchResultsPage, wire.search_results_page(["what"], hits))
    sent_unchanged(FileContentPage, wire.file_content_page("the text"))


# -- chat completions, completions, embeddings, models -----------------------------------------------------


def test_chat_completion() -> None:
    plain = wire.chat_choice(0, wire.chat_message("hello", []), "stop")
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    with_calls = wire.chat_choice(1, wire.chat_message("", calls), "tool_calls")
    sent_unchanged(ChatCompletion, wire.chat_completion("chatcmpl-1", NOW, "fake", [plain, with_calls], Usage(4, 2)))


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_completion_chunks(include_usage) -> None:
    pieces = [ToolCallDelta(0, "call_1", "f", '{"a"'), ToolCallDelta(0, arguments=": 1}")]
    choices = [
        wire.chat_chunk_choice(0, wire.chat_opening_delta()),
        wire.chat_chunk_choice(0, wire.chat_delta("hel", [])),
        wire.chat_chunk_choice(0, wire.chat_delta("", pieces)),
        wire.chat_chunk_choice(0, {}, "stop"),
    ]
    for choice in choices:
        sent_unchanged(
            ChatCompletionChunk,
            wire.chat_completion_chunk("chatcmpl-1", NOW, "fake", [choice], include_usage=include_usage),
        )
    last = wire.chat_completion_chunk("chatcmpl-1", NOW, "fake", [], include_usage=True, counts=Usage(4, 2))
    sent_unchanged(ChatCompletionChunk, last)


def test_text_completion() -> None:
    choices = [wire.text_choice(0, "hello", "stop"), wire.text_choice(1, "hi", "length")]
    sent_unchanged(TextCompletion, wire.text_completion("cmpl-1", NOW, "fake", choices, Usage(4, 2)))
    piece = wire.text_choice(0, "hel", None)
    sent_unchanged(TextCompletionChunk, wire.text_completion_chunk("cmpl-1", NOW, "fake", [piece]))
    sent_unchanged(TextCompletionChunk, wire.text_completion_chunk("cmpl-1", NOW, "fake", [], Usage(4, 2)))


@pytest.mark.parametrize("as_base64", [False, True])
def test_embeddings(as_base64) -> None:
    shaped = wire.embedding_list("embed", [[0.5, -1.0], [0.25, 2.0]], 7, as_base64=as_base64)
    sent_unchanged(EmbeddingList, shaped)


def test_models() -> None:
    registry = ModelRegistry({"fake": ScriptedEngine()}, created=NOW)
    sent_unchanged(ModelList, wire.model_list(registry.describe_all()))
