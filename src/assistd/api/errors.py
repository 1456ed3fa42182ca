"""The one mapping from errors to OpenAI error bodies: {"error": {"message", "type", "param", "code"}}.

Typed errors (assistd.errors; the store has made its failures typed ones: a database out of reach is a 503 with
Retry-After, a full disk a 507), request validation (400 instead of FastAPI's 422), Starlette's HTTP errors
(unknown route, wrong method, unparseable body, too large), a full disk or a lost connection met outside the
store, and, from the middleware, anything unexpected (500).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistd.api.responses import JSONResponse
from assistd.errors import AssistdError, StorageFull, StoreUnavailable
from assistd.protocol import wire
from assistd.store.database import store_error

log = logging.getLogger(__name__)

_STATUS_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


def error_response(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if error_type is None:
        error_type = "server_error" if status >= 500 else _STATUS_TYPES.get(status, "invalid_request_error")
    return JSONResponse(wire.error(message, error_type=error_type, param=param, code=code), status, headers=headers)


def _param_from_loc(loc: tuple[Any, ...], body: Any) -> str | None:
    """Pydantic's error location → OpenAI's `param` ("tools[0].function.name").

    Locations also hold union-member tags: "str" or "list[...]" for a plain union (they address nothing in
    the submitted body), and the `type` value of a tagged object, which repeats when the object's payload
    field is named like its type (`{"type": "function", "function": {...}}`). Both are left out.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    if not parts or (loc[0] == "body" and len(parts) == 1 and isinstance(parts[0], int)):
        return None  # the body as a whole, or a JSON decode position
    current, rendered = body, ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(current, list) and isinstance(part, int):
            rendered += f"[{part}]"
            current = current[part] if 0 <= part < len(current) else None
            continue
        next_part = None if last else parts[index + 1]
        is_tag = isinstance(current, dict) and current.get("type") == part == next_part
        if isinstance(current, dict) and part in current and not is_tag:
            rendered += f".{part}" if rendered else str(part)
            current = current[part]
        elif last and isinstance(part, str) and part.isidentifier() and (current is None or isinstance(current, dict)):
            rendered += f".{part}" if rendered else str(part)
        # anything else is a union tag: skip it
    return rendered or None


MAX_ERRORS_CONSIDERED = 50
_CODES = {"extra_forbidden": "unknown_parameter", "missing": "missing_required_parameter"}


def _depth(param: str | None) -> int:
    """How deep `param` lies in the body: "messages[0].content" is 2, as deep as "messages[10].content"."""
    return -1 if param is None else param.count(".") + param.count("[")


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    body = getattr(exc, "body", None)
    # One bad item of a long list is reported: the first ones are enough to choose from (100,000 bad list items
    # make 100,000 errors, and rendering each would cost the server a second for a 300 KB body).
    first_errors = exc.errors()[:MAX_ERRORS_CONSIDERED]
    errors = [(error, _param_from_loc(tuple(error.get("loc", ())), body)) for error in first_errors]
    if not errors:
        return error_response(400, "Invalid request.", code="invalid_value")
    if any(error.get("type") == "json_invalid" for error, _ in errors):
        return error_response(
            400,
            "We could not parse the JSON body of your request. The body must be valid JSON (UTF-8).",
            code="invalid_json",
        )
    # A union reports one error per member: the deepest location is the member the input was meant for.
    first, param = max(errors, key=lambda item: _depth(item[1]))
    kind = first.get("type", "")
    if param is None and tuple(first.get("loc", ()))[:1] == ("body",):
        message = "A request body is required." if kind == "missing" else "The request body must be a JSON object."
        return error_response(400, message, code="invalid_request_body")
    if kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    else:
        reasons = dict.fromkeys(error.get("msg", "invalid value") for error, where in errors if where == param)
        message = f"Invalid value for '{param}': {'; or '.join(reasons)}."
    code = _CODES.get(kind, "invalid_type" if kind.endswith("_type") else "invalid_value")
    return error_response(400, message, param=param, code=code)


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""

    @app.exception_handler(AssistdError)
    async def _assistd_error(request: Request, exc: AssistdError) -> JSONResponse:
        if isinstance(exc, StoreUnavailable):
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.cause_name)
        elif isinstance(exc, StorageFull):  # the operator's to mend, not the client's to retry
            log.error("storage full on %s %s: %s", request.method, request.url.path, exc.cause_name)
        return error_response(
            exc.status_code, exc.message, error_type=exc.error_type, param=exc.param, code=exc.code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    async def _os_error(request: Request, exc: Exception) -> JSONResponse:
        """A full disk (blobs), or a lost connection, met outside the store's sessions."""
        typed = store_error(exc)
        if typed is None:
            raise exc  # the middleware's 500
        return await _assistd_error(request, typed)

    app.add_exception_handler(OSError, _os_error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        elif exc.status_code == 413:
            message = "The request body is too large."
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))
