"""ASGI middleware: request ids, access logs, metrics, rate-limit headers and the last-resort 500; the request
body size limit."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistd import metrics
from assistd.api.errors import error_response
from assistd.logs import request_id_var

access_log = logging.getLogger("assistd.access")
log = logging.getLogger(__name__)


RATE_LIMIT_HEADERS = "rate_limit_headers"  # the request state's entry holding the x-ratelimit-* headers


class RequestContextMiddleware:
    """Gives each request an id (the `x-request-id` header and every log line), adds the rate-limit headers the
    limits left in the request's state, logs one access line, counts the request in the metrics, and turns an
    unexpected exception into an OpenAI-shaped 500 without leaking its text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                limits = scope.get("state", {}).get(RATE_LIMIT_HEADERS) or {}
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    *((name.encode(), value.encode()) for name, value in limits.items()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not response_started:
                response = error_response(500, "The server had an error while processing your request.")
                await response(scope, receive, send_with_id)
        except asyncio.CancelledError:  # uvicorn's graceful shutdown ran out of time (graceful_shutdown_seconds)
            log.warning("%s %s cut short: the server is shutting down", scope["method"], scope["path"])
            if not response_started:  # a retryable answer, in OpenAI's shape, rather than uvicorn's plain 500
                response = error_response(503, "The server is shutting down; retry the request.")
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed * 1000)
            route = getattr(scope.get("route"), "path", "unmatched")  # the template: ids do not make new series
            metrics.REQUESTS.labels(scope["method"], route, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(scope["method"], route).observe(elapsed)
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` (or a path's own limit) with 413, whether or not the client sent
    Content-Length, and a body that stops arriving for `read_timeout` seconds with 408 (a client that promises
    more bytes than it sends would otherwise hold its connection for ever)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_bytes_by_path: dict[str, int] | None = None,
        read_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_bytes_by_path = max_bytes_by_path or {}
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes_by_path.get(scope["path"].rstrip("/"), self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                response = error_response(413, "The request body is too large.", code="request_too_large")
                await response(scope, receive, send)
                return
        received, complete = 0, False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() waits for the disconnect, as long as a stream lasts
                return await receive()
            try:
                async with asyncio.timeout(self.read_timeout):  # wait_for could swallow a cancellation (3.11)
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, f"The request body stopped arriving for {self.read_timeout:g} s.") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)
