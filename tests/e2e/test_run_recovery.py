"""Crash recovery and expiry on servers of their own (short leases, a short tool-output timeout) whose chat model
is the deterministic stub upstream: what is asserted is what the server does with runs, not what a model says."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from deploy import stub_upstream
from tests.e2e.test_models import WEATHER_TOOLS
from tests.e2e.test_run_protocol import STUB_MODEL, connect, stub_server, wait_terminal
from tests.server import ServerProcess

SETTINGS = {"run_lease_seconds": "2", "tool_output_timeout_seconds": "2"}
STORY = " ".join(f"line{i}" for i in range(60))  # 3 s of streaming, 0.05 s a word


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    """The stub upstream, serving every server of the module (and surviving their crashes)."""
    with stub_upstream.serving(stub_upstream.create_app(8, 0.0)) as url:
        yield url


@pytest.fixture()
def server(tmp_path, stub_url):
    process = stub_server(tmp_path / "data", stub_url, **SETTINGS).start()
    yield process
    process.stop()


def test_runs_survive_sigkill(tmp_path, stub_url) -> None:
    data_dir = tmp_path / "data"
    server = stub_server(data_dir, stub_url, **SETTINGS).start()
    try:
        client = connect(server)
        assistant = client.beta.assistants.create(model=STUB_MODEL, instructions="Tell long stories.")
        threads, runs = [], []
        for i in range(4):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": f"Story number {i}, please."}])
            client.beta.threads.messages.create(
                thread.id, role="user", content=f"Acknowledged message {i}\nsay: {STORY}\ndelay: 0.05"
            )
            run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
            threads.append(thread.id)
            runs.append(run.id)
        deadline = time.monotonic() + 60
        while client.beta.threads.runs.retrieve(runs[0], thread_id=threads[0]).status == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        server.kill()

    restarted = stub_server(data_dir, stub_url, **SETTINGS).start()
    try:
        client = connect(restarted)
        for i, (thread_id, run_id) in enumerate(zip(threads, runs, strict=True)):
            final = wait_terminal(client, thread_id, run_id, timeout=180)
            assert final.status == "completed", final.last_error
            messages = client.beta.threads.messages.list(thread_id, order="asc").data
            assert [m.content[0].text.value for m in messages[:2]] == [
                f"Story number {i}, please.",
                f"Acknowledged message {i}\nsay: {STORY}\ndelay: 0.05",
            ]
            replies = [m for m in messages if m.run_id == run_id]
            assert [(m.status, m.content[0].text.value) for m in replies] == [("completed", STORY)]
            steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id).data
            assert [s.status for s in steps] == ["completed"]
    finally:
        restarted.stop()


def test_tool_outputs_expire(server) -> None:
    client = connect(server)
    assistant = client.beta.assistants.create(model=STUB_MODEL, tools=WEATHER_TOOLS)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Nairobi?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice="required"
    )
    assert run.status == "requires_action"
    final = wait_terminal(client, thread.id, run.id, timeout=30)
    assert final.status == "expired" and final.required_action is None
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "expired" and step.expired_at
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_x", "output": "late"}]
        )


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_at_message_completed_leaves_one_reply(tmp_path, stub_url, attempt) -> None:
    """The reply and the run's end commit together: a crash the moment the reply is announced, then a restart,
    never makes the run answer twice."""
    data_dir = tmp_path / "data"
    server = stub_server(data_dir, stub_url, **SETTINGS).start()
    try:
        client = connect(server)
        assistant = client.beta.assistants.create(model=STUB_MODEL)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Name a colour.\nsay: Teal."}])
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            for event in stream:
                if event.event == "thread.message.completed":
                    server.kill()
                    break
            run_id = stream.current_run.id
    finally:
        server.kill()

    restarted = stub_server(data_dir, stub_url, **SETTINGS).start()
    try:
        client = connect(restarted)
        final = wait_terminal(client, thread.id, run_id, timeout=60)
        assert final.status == "completed", final.last_error
        replies = [m for m in client.beta.threads.messages.list(thread.id).data if m.role == "assistant"]
        assert [(m.run_id, m.content[0].text.value) for m in replies] == [(run_id, "Teal.")]
        assert [s.type for s in client.beta.threads.runs.steps.list(run_id, thread_id=thread.id).data] == [
            "message_creation"
        ]
    finally:
        restarted.stop()


def test_debug_logs_hold_no_text_or_key_and_data_is_private(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data", log_level="debug").start()
    try:
        client = connect(server)
        key = (server.data_dir / "api_key").read_text().strip()
        secret = "the launch code is 7-4-1-9-zebra"
        thread = client.beta.threads.create(messages=[{"role": "user", "content": secret}])
        client.beta.threads.messages.create(thread.id, role="user", content=secret + " again")
        client.files.create(file=("notes.txt", secret.encode()), purpose="assistants")
        log = server.log_text()
        assert "DEBUG" in log, "the server logged at debug level"
        assert "zebra" not in log
        assert log.count(key[-12:]) == 1, "the first key is shown once, when it is made, and never logged"
        for path in [server.data_dir, *server.data_dir.rglob("*")]:
            if path.name.endswith(".log"):
                continue  # the test harness opens the log files, not the server
            assert path.stat().st_mode & 0o077 == 0, f"{path} is open to others: {oct(path.stat().st_mode)}"
    finally:
        server.stop()
