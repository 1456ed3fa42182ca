"""Rows → OpenAI wire objects, one function per object; protocol/assistants.py, files.py, generation.py and
common.py hold the model of each (tests/unit/test_protocol.py checks that they agree)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from assistd.engines.base import ToolCallDelta, Usage
from assistd.lifecycle import FileStatus, VectorStoreStatus
from assistd.retrieval.search import Hit
from assistd.store import tables


def assistant(row: tables.Assistant) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "assistant",
        "created_at": row.created_at,
        "name": row.name,
        "description": row.description,
        "model": row.model,
        "instructions": row.instructions,
        "tools": row.tools,
        "tool_resources": row.tool_resources or {},
        "metadata": row.metadata_,
        "temperature": row.temperature,
        "top_p": row.top_p,
        "response_format": row.response_format,
        "reasoning_effort": row.reasoning_effort,
        "response_language": row.response_language,
        "app": row.app,
    }


def thread(row: tables.Thread) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread",
        "created_at": row.created_at,
        "metadata": row.metadata_,
        "tool_resources": row.tool_resources or {},
    }


def message(row: tables.Message) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread.message",
        "created_at": row.created_at,
        "thread_id": row.thread_id,
        "status": row.status,
        "incomplete_details": row.incomplete_details,
        "completed_at": row.completed_at,
        "incomplete_at": row.incomplete_at,
        "role": row.role,
        "content": row.content,
        "assistant_id": row.assistant_id,
        "run_id": row.run_id,
        "attachments": row.attachments or [],
        "metadata": row.metadata_,
    }


def deleted(object_id: str, object_type: str) -> dict[str, Any]:
    """The answer to a deletion; `object` is `<object_type>.deleted`."""
    return {"id": object_id, "object": f"{object_type}.deleted", "deleted": True}


def file_deleted(file_id: str) -> dict[str, Any]:
    """The answer to a file's deletion: its `object` is "file", as OpenAI's is."""
    return {"id": file_id, "object": "file", "deleted": True}


def list_page(items: Sequence[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A page of a list: first and last ids are those of its items (null when it has none)."""
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def run(row: tables.Run) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread.run",
        "created_at": row.created_at,
        "assistant_id": row.assistant_id,
        "thread_id": row.thread_id,
        "status": row.status,
        "started_at": row.started_at,
        "expires_at": row.expires_at,
        "cancelled_at": row.cancelled_at,
        "failed_at": row.failed_at,
        "completed_at": row.completed_at,
        "required_action": row.required_action,
        "last_error": row.last_error,
        "model": row.model,
        "instructions": row.instructions,
        "tools": row.tools,
        "tool_resources": row.tool_resources or {},
        "metadata": row.metadata_,
        "temperature": row.temperature,
        "top_p": row.top_p,
        "max_completion_tokens": row.max_completion_tokens,
        "max_prompt_tokens": row.max_prompt_tokens,
        "truncation_strategy": row.truncation_strategy,
        "incomplete_details": row.incomplete_details,
        "usage": row.usage,
        "response_format": row.response_format if row.response_format is not None else "auto",
        "tool_choice": row.tool_choice if row.tool_choice is not None else "auto",
        "parallel_tool_calls": row.parallel_tool_calls,
        "response_language": row.response_language,
        "app": row.app,
    }


SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def run_step(row: tables.RunStep, include: Sequence[str] = ()) -> dict[str, Any]:
    """A run step; file_search results carry their passages only when `include` asks for SEARCH_CONTENT."""
    details = row.step_details
    if SEARCH_CONTENT not in include and any(c.get("type") == "file_search" for c in details.get("tool_calls", [])):
        details = {
            **details,
            "tool_calls": [_without_search_content(call) for call in details["tool_calls"]],
        }
    return {
        "id": row.id,
        "object": "thread.run.step",
        "created_at": row.created_at,
        "run_id": row.run_id,
        "assistant_id": row.assistant_id,
        "thread_id": row.thread_id,
        "type": row.type,
        "status": row.status,
        "cancelled_at": row.cancelled_at,
        "completed_at": row.completed_at,
        "expired_at": row.expired_at,
        "failed_at": row.failed_at,
        "last_error": row.last_error,
        "step_details": details,
        "usage": row.usage,
        "metadata": row.metadata_,
    }


def _without_search_content(call: dict[str, Any]) -> dict[str, Any]:
    if call.get("type") != "file_search":
        return call
    search = call["file_search"]
    results = [{k: v for k, v in result.items() if k != "content"} for result in search.get("results", [])]
    return {**call, "file_search": {**search, "results": results}}


def file(row: tables.File) -> dict[str, Any]:
    """`expires_at` only when the file expires; never `status_details` (deprecated, and typed as a string)."""
    shown: dict[str, Any] = {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
    }
    if row.expires_at is not None:
        shown["expires_at"] = row.expires_at
    return shown


def vector_store_expires_at(row: tables.VectorStore) -> int | None:
    """When a store expires: `expires_after.days` after it was last active (never without a policy)."""
    return row.last_active_at + row.expires_after["days"] * 86_400 if row.expires_after else None


def vector_store(row: tables.VectorStore, file_counts: dict[str, int], usage_bytes: int, moment: int) -> dict[str, Any]:
    expires_at = vector_store_expires_at(row)
    if expires_at is not None and expires_at <= moment:
        status = VectorStoreStatus.EXPIRED
    elif file_counts[FileStatus.IN_PROGRESS]:
        status = VectorStoreStatus.IN_PROGRESS
    else:
        status = VectorStoreStatus.COMPLETED
    shown: dict[str, Any] = {
        "id": row.id,
        "object": "vector_store",
        "created_at": row.created_at,
        "name": row.name,
        "description": row.description,
        "usage_bytes": usage_bytes,
        "file_counts": file_counts,
        "status": status,
        "expires_at": expires_at,
        "last_active_at": row.last_active_at,
        "metadata": row.metadata_,
    }
    if row.expires_after is not None:  # an object when there is a policy, absent (not null) without one
        shown["expires_after"] = row.expires_after
    return shown


def vector_store_file(row: tables.VectorStoreFile) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "vector_store.file",
        "created_at": row.created_at,
        "vector_store_id": row.vector_store_id,
        "status": row.status,
        "last_error": row.last_error,
        "usage_bytes": row.usage_bytes,
        "attributes": row.attributes or {},
        "chunking_strategy": row.chunking_strategy,
    }


def file_batch(row: tables.VectorStoreFileBatch, file_counts: dict[str, int]) -> dict[str, Any]:
    if file_counts[FileStatus.IN_PROGRESS]:
        status = FileStatus.IN_PROGRESS
    elif row.cancelled_at is not None:
        status = FileStatus.CANCELLED
    elif file_counts["total"] and file_counts[FileStatus.FAILED] == file_counts["total"]:
        status = FileStatus.FAILED
    else:
        status = FileStatus.COMPLETED
    return {
        "id": row.id,
        "object": "vector_store.files_batch",
        "created_at": row.created_at,
        "vector_store_id": row.vector_store_id,
        "status": status,
        "file_counts": file_counts,
    }


def search_result(hit: Hit) -> dict[str, Any]:
    return {
        "file_id": hit.file_id,
        "filename": hit.filename,
        "score": hit.score,
        "attributes": hit.attributes,
        "content": [{"type": "text", "text": hit.text}],
    }


def search_results_page(queries: Sequence[str], hits: Sequence[Hit]) -> dict[str, Any]:
    """A vector store search's answer: all its results in one page."""
    return {
        "object": "vector_store.search_results.page",
        "search_query": list(queries),
        "data": [search_result(hit) for hit in hits],
        "has_more": False,
        "next_page": None,
    }


def file_content_page(text: str) -> dict[str, Any]:
    """A vector store file's parsed text, in one page."""
    return {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text}],
        "has_more": False,
        "next_page": None,
    }


def usage(counts: Usage) -> dict[str, Any]:
    """The usage object of a completion, a run or a run step, with how many prompt tokens came from a cache."""
    return {
        "prompt_tokens": counts.prompt_tokens,
        "completion_tokens": counts.completion_tokens,
        "total_tokens": counts.total_tokens,
        "prompt_tokens_details": {"cached_tokens": counts.cached_tokens},
    }


def usage_counts(shown: dict[str, Any] | None) -> Usage:
    """The counts of a usage object `usage` made (or of one stored before it showed cached tokens)."""
    shown = shown or {}
    cached = (shown.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return Usage(shown.get("prompt_tokens", 0), shown.get("completion_tokens", 0), cached)


SYSTEM_FINGERPRINT = "fp_assistd"


def chat_message(text: str, tool_calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A chat completion's message: its text, or its tool calls (with the text before them, or null)."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    if tool_calls:
        message["content"] = text or None
        message["tool_calls"] = list(tool_calls)
    return message


def chat_choice(index: int, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def _generated(completion_id: str, object_type: str, created: int, model: str, *, chat: bool) -> dict[str, Any]:
    """The fields every completion and completion chunk opens with (chat ones have a service tier)."""
    head = {
        "id": completion_id,
        "object": object_type,
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return {**head, "service_tier": "default"} if chat else head


def chat_completion(
    completion_id: str, created: int, model: str, choices: Sequence[dict[str, Any]], counts: Usage
) -> dict[str, Any]:
    """A whole chat completion."""
    head = _generated(completion_id, "chat.completion", created, model, chat=True)
    return {**head, "choices": list(choices), "usage": usage(counts)}


def chat_opening_delta() -> dict[str, Any]:
    """The delta of a choice's first chunk: the role, and no text yet."""
    return {"role": "assistant", "content": "", "refusal": None}


def chat_delta(text: str, tool_calls: Sequence[ToolCallDelta]) -> dict[str, Any]:
    """The delta of a chunk of generated text and pieces of tool calls (empty when there is neither)."""
    delta: dict[str, Any] = {}
    if text:
        delta["content"] = text
    if tool_calls:
        delta["tool_calls"] = [
            {
                "index": call.index,
                **({"id": call.id, "type": "function"} if call.id else {}),
                "function": {**({"name": call.name} if call.name else {}), "arguments": call.arguments},
            }
            for call in tool_calls
        ]
    return delta


def chat_chunk_choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def chat_completion_chunk(
    completion_id: str,
    created: int,
    model: str,
    choices: Sequence[dict[str, Any]],
    *,
    include_usage: bool,
    counts: Usage | None = None,
) -> dict[str, Any]:
    """One chunk of a streamed chat completion; with `include_usage` it has `usage`: null, or `counts`."""
    chunk = {**_generated(completion_id, "chat.completion.chunk", created, model, chat=True), "choices": list(choices)}
    if include_usage:
        chunk["usage"] = usage(counts) if counts is not None else None
    return chunk


def text_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


def text_completion(
    completion_id: str, created: int, model: str, choices: Sequence[dict[str, Any]], counts: Usage
) -> dict[str, Any]:
    """A whole legacy completion."""
    head = _generated(completion_id, "text_completion", created, model, chat=False)
    return {**head, "choices": list(choices), "usage": usage(counts)}


def text_completion_chunk(
    completion_id: str, created: int, model: str, choices: Sequence[dict[str, Any]], counts: Usage | None = None
) -> dict[str, Any]:
    """One event of a streamed legacy completion; the last one, when usage is asked for, has `counts`."""
    chunk = {**_generated(completion_id, "text_completion", created, model, chat=False), "choices": list(choices)}
    if counts is not None:
        chunk["usage"] = usage(counts)
    return chunk


def embedding_list(
    model: str, vectors: Sequence[Sequence[float]], prompt_tokens: int, *, as_base64: bool
) -> dict[str, Any]:
    """Embeddings, each a list of floats or (`as_base64`) the base64 of their little-endian float32 bytes."""
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector,
        }
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_list(models: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The models list (not paginated)."""
    return {"object": "list", "data": list(models)}


def error(message: str, *, error_type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def extend_tool_calls(calls: dict[int, dict[str, Any]], deltas: Iterable[ToolCallDelta]) -> None:
    """Add streamed pieces of tool calls to `calls` (by their index): function calls in OpenAI's shape."""
    for delta in deltas:
        call = calls.setdefault(
            delta.index, {"id": delta.id, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        call["id"] = delta.id or call["id"]
        call["function"]["name"] += delta.name or ""
        call["function"]["arguments"] += delta.arguments


def message_text_delta(message_id: str, text: str, annotations: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A thread.message.delta adding `text` (and the annotations that point into it) to the message."""
    return {
        "id": message_id,
        "object": "thread.message.delta",
        "delta": {
            "content": [
                {
                    "index": 0,
                    "type": "text",
                    "text": {"value": text, "annotations": [{"index": i, **a} for i, a in enumerate(annotations)]},
                }
            ]
        },
    }


def message_content_delta(row: tables.Message) -> dict[str, Any]:
    """A thread.message.delta carrying all of a message's content (annotations indexed as the SDK expects)."""
    content = []
    for index, block in enumerate(row.content):
        if block.get("type") == "text":
            text = block["text"]
            annotations = [{"index": i, **a} for i, a in enumerate(text.get("annotations") or [])]
            block = {"type": "text", "text": {"value": text["value"], "annotations": annotations}}
        content.append({"index": index, **block})
    return {"id": row.id, "object": "thread.message.delta", "delta": {"content": content}}


def step_tool_calls_delta(step_id: str, calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A thread.run.step.delta bringing `calls` into a tool_calls step (clients append deltas to the step)."""
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {
            "step_details": {
                "type": "tool_calls",
                "tool_calls": [{"index": index, **call} for index, call in enumerate(calls)],
            }
        },
    }


def function_call(call: dict[str, Any]) -> dict[str, Any]:
    """A function call as the model made it (id, name, arguments), without its output."""
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]},
    }


def submit_tool_outputs(calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A run's required_action: the function calls whose outputs the client must submit."""
    return {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [function_call(c) for c in calls]}}


def file_search_call(call_id: str, hits: Sequence[Hit], score_threshold: float) -> dict[str, Any]:
    """A run step's file_search tool call, with its results (their content is shown only when asked for)."""
    return {
        "id": call_id,
        "type": "file_search",
        "file_search": {
            "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": score_threshold},
            "results": [
                {
                    "file_id": hit.file_id,
                    "file_name": hit.filename,
                    "score": hit.score,
                    "content": [{"type": "text", "text": hit.text}],
                }
                for hit in hits
            ],
        },
    }
