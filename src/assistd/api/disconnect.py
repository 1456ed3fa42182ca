"""Abandon a request's work when its client disconnects, on routes whose only product is their answer."""

from __future__ import annotations

import asyncio
import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499  # nginx's status for the access log (and metrics) of a request abandoned this way


class AbandonOnDisconnect:
    """For POST requests to `paths`: once the body is read, listens for the client's disconnect and, if it comes
    before the response is complete, cancels the handler wherever it awaits (a generation stops at its next
    token). Starlette notices a disconnect only while it streams a response, so a handler that computes its whole
    answer first (a non-streamed chat completion: seconds to minutes of CPU) would otherwise finish for nobody.
    Only for routes that write nothing a cancellation could leave half done."""

    def __init__(self, app: ASGIApp, paths: re.Pattern[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self.paths.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        body_read, gone = asyncio.Event(), asyncio.Event()
        started = responded = abandoned = False

        async def receive_body() -> Message:
            if body_read.is_set():  # from here on the watcher listens: the app hears of the disconnect from it
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body", False):
                body_read.set()
            return message

        async def send_noting_the_end(message: Message) -> None:
            nonlocal started, responded
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                responded = True
            await send(message)

        async def listen() -> None:
            """Returns when the client disconnects, or the response is complete (reported the same way)."""
            await body_read.wait()
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        handler = asyncio.ensure_future(self.app(scope, receive_body, send_noting_the_end))
        watcher = asyncio.create_task(listen())
        try:
            await asyncio.wait((handler, watcher), return_when=asyncio.FIRST_COMPLETED)
            if not handler.done() and not responded:
                handler.cancel()
                abandoned = True
            await asyncio.wait((handler,))
        finally:
            watcher.cancel()
            handler.cancel()  # does something only when this request itself is cancelled (a shutdown)
        if not abandoned:
            handler.result()  # the handler's exception, if any
            return
        log.info("client disconnected: %s %s abandoned", scope["method"], scope["path"])
        if not started:  # nobody receives it (the server drops what is sent to a closed connection): for the logs
            await send({"type": "http.response.start", "status": CLIENT_CLOSED_REQUEST, "headers": []})
