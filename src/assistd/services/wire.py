"""Rows → OpenAI wire objects, one function per object, shaped as openai.types.beta describes them."""

from __future__ import annotations

from typing import Any

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
    return {"id": object_id, "object": f"{object_type}.deleted", "deleted": True}
