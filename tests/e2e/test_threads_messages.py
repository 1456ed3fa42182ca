"""Threads and their messages through the official SDK against the real server."""

from __future__ import annotations

import time

import openai
import pytest
from openai.types.beta import Thread, ThreadDeleted
from openai.types.beta.threads import Message, MessageDeleted


def test_thread_create_with_messages_metadata_and_resources(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("notes.txt", b"Meeting notes."), purpose="assistants").id
    store_id = client.vector_stores.create(name="thread resources").id
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "Hello", "metadata": {"n": "1"}},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi! How can I help?"}]},
            {
                "role": "user",
                "content": "See the file",
                "attachments": [{"file_id": file_id, "tools": [{"type": "file_search"}, {"type": "code_interpreter"}]}],
            },
        ],
        metadata={"customer": "42"},
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    assert isinstance(thread, Thread) and thread.id.startswith("thread_") and thread.object == "thread"
    assert thread.metadata == {"customer": "42"}
    assert thread.tool_resources.file_search.vector_store_ids == [store_id]
    assert client.beta.threads.retrieve(thread.id) == thread

    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert [m.content[0].text.value for m in messages] == ["Hello", "Hi! How can I help?", "See the file"]
    assert messages[0].metadata == {"n": "1"}
    assert all(m.thread_id == thread.id and m.status == "completed" for m in messages)
    assert messages[2].attachments[0].file_id == file_id
    assert [t.type for t in messages[2].attachments[0].tools] == ["file_search", "code_interpreter"]


def test_empty_thread(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    assert thread.metadata == {}
    assert client.beta.threads.messages.list(thread.id).data == []


def test_thread_modify_and_delete_removes_messages(client: openai.OpenAI, http) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    message_id = client.beta.threads.messages.list(thread.id).data[0].id
    file_id = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants").id
    modified = client.beta.threads.update(
        thread.id, metadata={"a": "b"}, tool_resources={"code_interpreter": {"file_ids": [file_id]}}
    )
    assert modified.metadata == {"a": "b"}
    assert modified.tool_resources.code_interpreter.file_ids == [file_id]
    deleted = client.beta.threads.delete(thread.id)
    assert isinstance(deleted, ThreadDeleted) and deleted.deleted and deleted.object == "thread.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message_id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)


def test_message_crud(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    image = client.files.create(file=("cat.png", b"\x89PNG not really"), purpose="vision").id
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
            {"type": "image_file", "image_file": {"file_id": image}},
        ],
        metadata={"k": "v"},
    )
    assert isinstance(message, Message) and message.id.startswith("msg_")
    assert message.object == "thread.message" and message.thread_id == thread.id
    assert message.assistant_id is None and message.run_id is None and message.attachments == []
    assert [part.type for part in message.content] == ["text", "image_url", "image_file"]
    assert message.content[0].text.annotations == []
    assert message.content[1].image_url.url == "https://example.com/cat.png"
    assert message.content[1].image_url.detail == "low"
    assert message.content[2].image_file.file_id == image
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id) == message

    modified = client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"k": "w"})
    assert modified.metadata == {"k": "w"} and modified.content == message.content

    deleted = client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert isinstance(deleted, MessageDeleted) and deleted.deleted and deleted.object == "thread.message.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)


def test_message_of_another_thread_is_not_found(client: openai.OpenAI) -> None:
    first, second = client.beta.threads.create(), client.beta.threads.create()
    message = client.beta.threads.messages.create(first.id, role="user", content="mine")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message.id, thread_id=second.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(message.id, thread_id=second.id)
    assert client.beta.threads.messages.retrieve(message.id, thread_id=first.id).id == message.id


def test_list_messages_by_run_id(client: openai.OpenAI, env) -> None:
    """Runs arrive with a later issue; the filter is on the stored run_id, set here through the store."""
    import asyncio

    from sqlalchemy import update

    from assistd.store import tables
    from assistd.store.database import Database

    thread = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(thread.id, role="user", content=str(i)).id for i in range(3)]

    async def tag() -> None:
        db = Database(env.server.database_url)
        async with db.write() as session:
            await session.execute(update(tables.Message).where(tables.Message.id.in_(ids[:2])).values(run_id="run_x"))
        await db.dispose()

    asyncio.run(tag())
    tagged = client.beta.threads.messages.list(thread.id, run_id="run_x", order="asc").data
    assert [m.id for m in tagged] == ids[:2] and all(m.run_id == "run_x" for m in tagged)
    assert client.beta.threads.messages.list(thread.id, run_id="run_other").data == []
    assert len(client.beta.threads.messages.list(thread.id).data) == 3


def test_thread_create_without_a_body(client, http) -> None:
    response = http.post("/v1/threads")
    assert response.status_code == 200
    assert client.beta.threads.retrieve(response.json()["id"]).metadata == {}


def test_idempotency_key_on_creates(client, http) -> None:
    def post(path: str, body: dict, key: str):
        return http.post(path, json=body, headers={"Idempotency-Key": key})

    key = f"k-{time.time_ns()}"
    first, again = (post("/v1/assistants", {"model": "local"}, key) for _ in range(2))
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    thread_a, thread_b = (post("/v1/threads", {}, key + "-t") for _ in range(2))
    assert thread_a.json()["id"] == thread_b.json()["id"]
    thread_id = thread_a.json()["id"]
    message = {"role": "user", "content": "once"}
    m1, m2 = (post(f"/v1/threads/{thread_id}/messages", message, key + "-m") for _ in range(2))
    assert m1.json()["id"] == m2.json()["id"]
    assert len(client.beta.threads.messages.list(thread_id).data) == 1
    reused = post("/v1/threads", {}, key)  # the assistant's key
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "idempotency_key_reused"
    changed = post(f"/v1/threads/{thread_id}/messages", {"role": "user", "content": "twice?"}, key + "-m")
    assert changed.status_code == 400 and changed.json()["error"]["code"] == "idempotency_key_reused"
    assert len(client.beta.threads.messages.list(thread_id).data) == 1, "a refused request writes nothing"
    other_model = post("/v1/assistants", {"model": "other"}, key)
    assert other_model.status_code == 400 and other_model.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotency_key_on_uploads_compares_what_is_stored(client, http) -> None:
    key = f"u-{time.time_ns()}"

    def upload(content: bytes):
        return http.post(
            "/v1/files",
            files={"file": ("same.txt", content)},
            data={"purpose": "assistants"},
            headers={"Idempotency-Key": key},
        )

    first, again = upload(b"one"), upload(b"one")
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    different = upload(b"two")
    assert different.status_code == 400 and different.json()["error"]["code"] == "idempotency_key_reused"
    assert [f.id for f in client.files.list() if f.filename == "same.txt"] == [first.json()["id"]]
