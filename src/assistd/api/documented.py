"""What each route answers, declared for /openapi.json: the model of its body, its event stream, its errors.

The builders of protocol/wire.py shape every answer and the models of protocol/ describe them; unit tests hold
the two together (tests/unit/test_protocol.py) and the models against OpenAI's spec
(tests/unit/test_openapi_schemas.py). The models document the answers without validating them at run time:
`response_model=<model>` sends the same bytes but costs ~20-35 µs of CPU per object (measured in-process: a run
0.335 → 0.370 ms per request, a page of 100 runs 2.6 → 4.6 ms).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from assistd.protocol.common import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "The request was refused: OpenAI's error body."},
    "5XX": {"model": ErrorBody, "description": "The server failed, or its store is out of reach: OpenAI's error body."},
}
"""The error answers of every /v1 route."""


def returns(model: type[BaseModel] | Any) -> dict[str, Any]:
    """A JSON route's options: its answer is documented as `model`, and sent as the builder shaped it."""
    return {"response_model": Any, "responses": {200: {"model": model}}}


def streams(model: type[BaseModel], stream: dict[str, Any]) -> dict[str, Any]:
    """The options of a route that answers `model` as JSON, or server-sent events of schema `stream`."""
    return {
        "response_model": None,
        "responses": {200: {"model": model, "content": {"text/event-stream": {"schema": stream}}}},
    }
