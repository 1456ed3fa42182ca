"""Fair to every tenant, through the official SDK on the session server: another project's run or file is not
held back by a project's backlog, and a .docx bomb fails with a clear reason without holding anyone up."""

from __future__ import annotations

import contextlib
import io
import time

import docx
import openai

from tests.e2e.test_models import CHAT_MODEL

TERMINAL_RUN = {"completed", "incomplete", "failed", "cancelled", "expired"}


def _prose(seed: int, size: int) -> bytes:
    words = ("queue", "worker", "lease", "tenant", "project", "vector", "store", "chunk", "embedding", "answer")
    text = " ".join(words[(seed + i * 7) % len(words)] for i in range(size // 8))
    return text[:size].encode()


def _upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def test_a_backlog_of_runs_does_not_hold_back_another_projects_run(client, other_client) -> None:
    """A queues 24 runs, then B one: when B's has completed, most of A's are still waiting (first-in-first-out,
    all 24 of A's would have completed before it). A's runs count to twenty, so that they are still there when B's
    comes (one-word answers from a prompt the engine has cached take a few milliseconds each)."""
    a_assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Count aloud, one number a line.")
    b_assistant = other_client.beta.assistants.create(model=CHAT_MODEL, instructions="Answer in one word.")
    backlog = [
        client.beta.threads.create_and_run(
            assistant_id=a_assistant.id,
            thread={"messages": [{"role": "user", "content": f"Count from {i} to {i + 20}."}]},
            max_completion_tokens=24,
        )
        for i in range(24)
    ]
    b_run = other_client.beta.threads.create_and_run(
        assistant_id=b_assistant.id,
        thread={"messages": [{"role": "user", "content": "Say hello."}]},
        max_completion_tokens=2,
    )
    queued_at = time.monotonic()
    try:
        while (run := other_client.beta.threads.runs.retrieve(b_run.id, thread_id=b_run.thread_id)).status not in (
            TERMINAL_RUN
        ):
            assert time.monotonic() - queued_at < 120, "B's run did not finish"
            time.sleep(0.05)
        waited = time.monotonic() - queued_at
        a_done = sum(
            client.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id).status in TERMINAL_RUN for r in backlog
        )
    finally:
        for r in backlog:
            with contextlib.suppress(openai.BadRequestError):  # already finished
                client.beta.threads.runs.cancel(r.id, thread_id=r.thread_id)
    assert run.status in ("completed", "incomplete"), run.last_error
    assert a_done <= 12, f"{a_done} of A's 24 runs finished before B's ({waited:.1f} s)"


def _wait_files(client: openai.OpenAI, store_id: str, file_ids: list[str], seen: dict[str, float], start: float):
    """Note when each file leaves in_progress."""
    for file_id in file_ids:
        if file_id not in seen:
            status = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id).status
            if status != "in_progress":
                seen[file_id] = time.monotonic() - start


def test_a_backlog_of_files_does_not_hold_back_another_projects_file(client, other_client) -> None:
    """A puts 8 files into a store, then B one: B's is ingested before most of A's."""
    a_files = [_upload(client, f"part{i}.txt", _prose(i, 3000)) for i in range(8)]
    b_file = _upload(other_client, "note.txt", b"The other project's one short note.")
    a_store = client.vector_stores.create(name="backlog")
    b_store = other_client.vector_stores.create(name="one file")
    start = time.monotonic()
    client.vector_stores.file_batches.create(a_store.id, file_ids=a_files)
    other_client.vector_stores.files.create(b_store.id, file_id=b_file)
    a_seen: dict[str, float] = {}
    b_seen: dict[str, float] = {}
    while len(a_seen) < len(a_files):
        assert time.monotonic() - start < 180, f"A's files did not finish: {a_seen}"
        _wait_files(other_client, b_store.id, [b_file], b_seen, start)
        _wait_files(client, a_store.id, a_files, a_seen, start)
        time.sleep(0.1)
    while not b_seen:
        _wait_files(other_client, b_store.id, [b_file], b_seen, start)
    assert other_client.vector_stores.files.retrieve(b_file, vector_store_id=b_store.id).status == "completed"
    before_b = sorted(at for at in a_seen.values() if at < b_seen[b_file])
    assert len(before_b) <= 3, f"B's file done at {b_seen[b_file]:.1f} s, after A's at {before_b}"


def test_a_docx_bomb_fails_clearly_while_another_projects_file_is_ingested(client, other_client) -> None:
    """A 3-million-character .docx of a few dozen KB into A's store, then a tiny file into B's: A's fails as
    `invalid_file` naming the character cap, quickly; B's completes meanwhile."""
    document = docx.Document()
    document.add_paragraph("a" * 3_000_000)
    buffer = io.BytesIO()
    document.save(buffer)
    assert len(buffer.getvalue()) < 100_000
    bomb = _upload(client, "bomb.docx", buffer.getvalue())
    tiny = _upload(other_client, "tiny.txt", b"Thirty-five bytes of useful text..")
    a_store = client.vector_stores.create(name="bomb")
    b_store = other_client.vector_stores.create(name="tiny")
    start = time.monotonic()
    client.vector_stores.files.create(a_store.id, file_id=bomb)
    other_client.vector_stores.files.create(b_store.id, file_id=tiny)
    a_seen: dict[str, float] = {}
    b_seen: dict[str, float] = {}
    while len(a_seen) + len(b_seen) < 2:
        assert time.monotonic() - start < 60, f"not done within a minute: {a_seen} {b_seen}"
        _wait_files(client, a_store.id, [bomb], a_seen, start)
        _wait_files(other_client, b_store.id, [tiny], b_seen, start)
        time.sleep(0.1)
    failed = client.vector_stores.files.retrieve(bomb, vector_store_id=a_store.id)
    assert failed.status == "failed" and failed.last_error.code == "invalid_file"
    assert "more than 500,000 characters" in failed.last_error.message
    assert other_client.vector_stores.files.retrieve(tiny, vector_store_id=b_store.id).status == "completed"
    assert a_seen[bomb] < 20 and b_seen[tiny] < 20, (a_seen, b_seen)
