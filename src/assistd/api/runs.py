"""/v1/threads/{thread_id}/runs (+ steps, cancel, submit_tool_outputs) and /v1/threads/runs"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from assistd.api import sse
from assistd.api.deps import Caller, GeneratingCaller, IdempotencyKey, ServicesDep
from assistd.api.documented import ERRORS, returns, streams
from assistd.api.pagination import list_envelope, page_params
from assistd.protocol.assistants import Run, RunStep
from assistd.protocol.common import ListPage
from assistd.protocol.events import run_stream_schema
from assistd.schemas.runs import RunCreate, RunUpdate, SubmitToolOutputs, ThreadAndRunCreate
from assistd.services.runs import Started
from assistd.store.pagination import PageRequest

router = APIRouter(tags=["runs"], responses=ERRORS)
RUN_OR_EVENTS = streams(Run, run_stream_schema())

POLL_AFTER_MS = "250"  # the SDK's poll helpers wait this long between retrievals instead of a second


def _poll_hint(response: Response) -> None:
    response.headers["openai-poll-after-ms"] = POLL_AFTER_MS


def _answer(started: Started, response: Response) -> dict[str, Any] | StreamingResponse:
    """The run as JSON, or its events as SSE until it stops or needs tool outputs."""
    subscription = started.events
    if subscription is None:
        _poll_hint(response)
        return started.run

    async def messages() -> AsyncIterator[bytes]:
        try:
            for event in started.prelude:
                yield sse.encode(event.data, event.name)
            async for event in subscription:  # it ends with the event that says the run stopped
                yield sse.encode(event.data, event.name)
        finally:
            await subscription.close()  # the run goes on without us
        yield sse.encode(sse.DONE, "done")

    return sse.response(messages())


@router.post("/v1/threads/runs", **RUN_OR_EVENTS)
async def create_thread_and_run(
    body: ThreadAndRunCreate,
    caller: GeneratingCaller,
    services: ServicesDep,
    response: Response,
    key: IdempotencyKey = None,
) -> dict[str, Any] | StreamingResponse:
    started = await services.runs.create_thread_and_run(caller, body, idempotency_key=key, stream=bool(body.stream))
    return _answer(started, response)


@router.post("/v1/threads/{thread_id}/runs", **RUN_OR_EVENTS)
async def create_run(
    thread_id: str,
    body: RunCreate,
    caller: GeneratingCaller,
    services: ServicesDep,
    response: Response,
    key: IdempotencyKey = None,
) -> dict[str, Any] | StreamingResponse:
    started = await services.runs.create(caller, thread_id, body, idempotency_key=key, stream=bool(body.stream))
    return _answer(started, response)


@router.get("/v1/threads/{thread_id}/runs", **returns(ListPage[Run]))
async def list_runs(
    thread_id: str, caller: Caller, services: ServicesDep, page: Annotated[PageRequest, Depends(page_params("run"))]
) -> dict[str, Any]:
    return list_envelope(await services.runs.list(caller, thread_id, page))


@router.get("/v1/threads/{thread_id}/runs/{run_id}", **returns(Run))
async def retrieve_run(
    thread_id: str, run_id: str, caller: Caller, services: ServicesDep, response: Response
) -> dict[str, Any]:
    _poll_hint(response)
    return await services.runs.retrieve(caller, thread_id, run_id)


@router.post("/v1/threads/{thread_id}/runs/{run_id}", **returns(Run))
async def modify_run(
    thread_id: str, run_id: str, body: RunUpdate, caller: Caller, services: ServicesDep
) -> dict[str, Any]:
    return await services.runs.modify(caller, thread_id, run_id, body.metadata)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/cancel", **returns(Run))
async def cancel_run(
    thread_id: str, run_id: str, caller: Caller, services: ServicesDep, response: Response
) -> dict[str, Any]:
    _poll_hint(response)
    return await services.runs.cancel(caller, thread_id, run_id)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", **RUN_OR_EVENTS)
async def submit_tool_outputs(
    thread_id: str,
    run_id: str,
    body: SubmitToolOutputs,
    caller: GeneratingCaller,
    services: ServicesDep,
    response: Response,
) -> dict[str, Any] | StreamingResponse:
    started = await services.runs.submit_tool_outputs(caller, thread_id, run_id, body, stream=bool(body.stream))
    return _answer(started, response)


@router.get("/v1/threads/{thread_id}/runs/{run_id}/steps", **returns(ListPage[RunStep]))
async def list_run_steps(
    thread_id: str,
    run_id: str,
    caller: Caller,
    services: ServicesDep,
    page: Annotated[PageRequest, Depends(page_params("step"))],
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> dict[str, Any]:
    return list_envelope(await services.runs.list_steps(caller, thread_id, run_id, page, include or ()))


@router.get("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", **returns(RunStep))
async def retrieve_run_step(
    thread_id: str,
    run_id: str,
    step_id: str,
    caller: Caller,
    services: ServicesDep,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> dict[str, Any]:
    return await services.runs.retrieve_step(caller, thread_id, run_id, step_id, include or ())
