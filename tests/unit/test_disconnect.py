"""AbandonOnDisconnect: a handler is cancelled when its client leaves before the answer, and only then."""

from __future__ import annotations

import asyncio

import pytest

from assistd.api.disconnect import AbandonOnDisconnect
from assistd.api.generation import ANSWER_ONLY_PATHS


def scope(path: str = "/v1/chat/completions", method: str = "POST") -> dict:
    return {"type": "http", "method": method, "path": path, "headers": []}


class Client:
    """The server's side of one connection: the body in two parts, then a disconnect when `leave` is set."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()
        self.sent: list[dict] = []
        self._parts = [
            {"type": "http.request", "body": b'{"a"', "more_body": True},
            {"type": "http.request", "body": b": 1}", "more_body": False},
        ]

    async def receive(self) -> dict:
        if self._parts:
            return self._parts.pop(0)
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.leave.set()  # as uvicorn does: once the response is complete, receive() reports a disconnect
        self.sent.append(message)


async def read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/completions", "/v1/engines/davinci/completions", "/v1/embeddings/"]
)
def test_the_generation_routes_are_answer_only(path) -> None:
    assert ANSWER_ONLY_PATHS.fullmatch(path)


@pytest.mark.parametrize("path", ["/v1/models", "/v1/threads/runs", "/v1/chat/completions/x", "/v1/files"])
def test_other_routes_are_not(path) -> None:
    assert not ANSWER_ONLY_PATHS.fullmatch(path)


def test_a_client_that_leaves_cancels_the_handler() -> None:
    stages: list[str] = []

    async def handler(scope, receive, send) -> None:
        assert await read_body(receive) == b'{"a": 1}'
        stages.append("body read")
        try:
            await asyncio.sleep(60)  # a long generation
        except asyncio.CancelledError:
            stages.append("cancelled")
            raise

    async def main() -> Client:
        client = Client()
        middleware = AbandonOnDisconnect(handler, ANSWER_ONLY_PATHS)
        task = asyncio.create_task(middleware(scope(), client.receive, client.send))
        await asyncio.sleep(0.05)
        client.leave.set()
        await asyncio.wait_for(task, 5)
        return client

    client = asyncio.run(main())
    assert stages == ["body read", "cancelled"]
    assert client.sent == [{"type": "http.response.start", "status": 499, "headers": []}]  # for the access log


def test_a_handler_that_answers_is_left_alone() -> None:
    async def handler(scope, receive, send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        await asyncio.sleep(0.05)  # still running when the server reports the finished response as a disconnect
        assert await receive() == {"type": "http.disconnect"}

    async def main() -> Client:
        client = Client()
        await asyncio.wait_for(AbandonOnDisconnect(handler, ANSWER_ONLY_PATHS)(scope(), client.receive, client.send), 5)
        return client

    assert [message.get("status") for message in asyncio.run(main()).sent] == [200, None]


def test_a_handler_error_propagates() -> None:
    async def handler(scope, receive, send) -> None:
        await read_body(receive)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(AbandonOnDisconnect(handler, ANSWER_ONLY_PATHS)(scope(), Client().receive, Client().send))


@pytest.mark.parametrize("request_scope", [scope("/v1/threads/runs"), scope(method="GET")])
def test_other_requests_pass_through(request_scope) -> None:
    client = Client()

    async def handler(scope, receive, send) -> None:
        assert receive == client.receive and send == client.send

    asyncio.run(AbandonOnDisconnect(handler, ANSWER_ONLY_PATHS)(request_scope, client.receive, client.send))
