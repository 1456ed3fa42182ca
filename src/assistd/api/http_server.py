"""How `assistd serve` runs uvicorn: its options, and an HTTP protocol with a deadline for the request head.

uvicorn (0.54, httptools) has no timeout for the request line and headers: a connection that sends
"GET / HTTP/1.1\\r\\nHost: x\\r\\n" and then nothing, or nothing at all, is held for ever (its keep-alive timer only
runs between requests, and the first byte of the next request stops it). No option changes that, and the ASGI
app cannot help: it is called only once the head is complete. So the protocol class is subclassed here and
passed to uvicorn as `http=`; it is the class uvicorn itself picks when httptools is installed (a dependency
through `uvicorn[standard]`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from assistd.config import Settings
from assistd.protocol import wire

log = logging.getLogger(__name__)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus `head_timeout`: the request head must be complete within that many
    seconds of the connection's opening, or of the first byte of the next request on a kept-alive connection.
    A stalled head gets 408 and the connection is closed; a connection that never sent a byte is closed."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        if self._head_deadline is None:  # a new connection's deadline runs from its opening
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        self._head_begun = False
        super().on_headers_complete()

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined head stalled: close once the response under way is sent
            return
        if self._head_begun:
            log.info(
                "request head from %s incomplete after %g s: 408, connection closed", self.client, self.head_timeout
            )
            self.transport.write(self._timeout_response())
        self.transport.close()

    def _timeout_response(self) -> bytes:
        body = json.dumps(
            wire.error(
                f"The request head was not complete within {self.head_timeout:g} s.",
                error_type="invalid_request_error",
            )
        ).encode()
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        return head.encode() + body


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for these settings (one process or several: the protocol is picklable)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": functools.partial(HeadTimeoutProtocol, head_timeout=settings.header_read_timeout_seconds),
        "timeout_graceful_shutdown": settings.graceful_shutdown_seconds,
        "log_config": None,
        "access_log": False,
        "server_header": False,
    }
