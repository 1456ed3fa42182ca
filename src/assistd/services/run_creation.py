"""A new run's row, inside the transaction that queues it: its assistant's settings under the request's, the
model and schemas checked now (a 400, not a failed run later), one active run per thread."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from assistd.clock import now
from assistd.engines.base import GenerationRequest
from assistd.engines.registry import ModelRegistry
from assistd.errors import InvalidRequest, NotFound
from assistd.lifecycle import RunStatus
from assistd.schemas.runs import RunOptions
from assistd.services.idempotency import Idempotency, remember
from assistd.services.principal import Principal
from assistd.services.serialize import to_stored
from assistd.store import tables
from assistd.store.repositories import AssistantRepository, RunRepository
from assistd.tools.function import constraints


def _pick(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def run_instructions(assistant: tables.Assistant, body: RunOptions, additional: str | None = None) -> str:
    """The request's instructions, else the assistant's, with `additional` instructions after them."""
    instructions = _pick(body.instructions, assistant.instructions) or ""
    if additional:
        instructions = f"{instructions}\n\n{additional}".strip()
    return instructions


def new_run(
    registry: ModelRegistry,
    run_id: str,
    thread_id: str,
    assistant: tables.Assistant,
    body: RunOptions,
    instructions: str,
) -> tables.Run:
    """A queued run with the request's settings, the assistant's where the request has none. Raises
    InvalidRequest for a model the registry does not know, or tools and formats it cannot generate."""
    model = body.model or assistant.model
    engine = registry.text(model)  # an unknown model is the caller's error now, not a failed run later
    truncation = to_stored(body.truncation_strategy) or {"type": "auto", "last_messages": None}
    run = tables.Run(
        id=run_id,
        thread_id=thread_id,
        assistant_id=assistant.id,
        created_at=now(),
        status=RunStatus.QUEUED,
        model=model,
        instructions=instructions,
        tools=to_stored(body.tools) if body.tools is not None else assistant.tools,
        tool_resources=assistant.tool_resources,
        metadata_=body.metadata or {},
        temperature=_pick(body.temperature, assistant.temperature),
        top_p=_pick(body.top_p, assistant.top_p),
        response_format=to_stored(_pick(body.response_format, assistant.response_format)),
        tool_choice=to_stored(body.tool_choice),
        parallel_tool_calls=_pick(body.parallel_tool_calls, True),
        max_prompt_tokens=body.max_prompt_tokens,
        max_completion_tokens=body.max_completion_tokens,
        truncation_strategy={"last_messages": None, **truncation},
        response_language=body.response_language or assistant.response_language,
        app=assistant.app,
        attempts=0,
    )
    engine.check(GenerationRequest(messages=[], **constraints(run, rounds=0, max_rounds=1)))  # schemas: 400 now
    return run


async def require_assistant(session, project_id: str, assistant_id: str) -> tables.Assistant:
    """The project's assistant with this id (404 otherwise)."""
    assistant = await AssistantRepository(session, project_id).get(assistant_id)
    if assistant is None:
        raise NotFound.for_object("assistant", assistant_id)
    return assistant


def require_idle_thread(thread_id: str, active_run: str | None) -> None:
    """Refuse a run on a thread that has one active already."""
    if active_run is not None:
        raise InvalidRequest(
            f"Thread {thread_id} already has an active run {active_run}.", param="thread_id", code="run_active"
        )


async def insert_run(session, principal: Principal, run: tables.Run, key: Idempotency | None) -> None:
    """Add the run, as the caller's key's, remembered under its Idempotency-Key. A concurrent create that won
    the thread's one active run makes this one a 400 `run_active`."""
    run.api_key_id = principal.key_id
    try:
        await RunRepository(session, principal.project_id).insert(run)
        await remember(session, key, principal.project_id, run)
        await session.flush()
    except IntegrityError as exc:  # the one-active-run index: a concurrent create won
        raise InvalidRequest(
            f"Thread {run.thread_id} already has an active run.", param="thread_id", code="run_active"
        ) from exc
