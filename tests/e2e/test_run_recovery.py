"""Crash recovery and expiry on a server of their own: short leases and a short tool-output timeout."""

from __future__ import annotations

import time

import openai
import pytest

from tests.conftest import checked_http_client
from tests.e2e.test_models import CHAT_MODEL, WEATHER_TOOLS
from tests.e2e.test_runs import wait_terminal
from tests.server import ServerProcess

SETTINGS = {"run_lease_seconds": "2", "tool_output_timeout_seconds": "2"}


def connect(server: ServerProcess) -> openai.OpenAI:
    key = (server.data_dir / "api_key").read_text().strip()
    return openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, http_client=checked_http_client()
    )


@pytest.fixture()
def server(tmp_path):
    process = ServerProcess(tmp_path / "data", **SETTINGS).start()
    yield process
    process.stop()


def test_runs_survive_sigkill(tmp_path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, **SETTINGS).start()
    try:
        client = connect(server)
        assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Tell long stories.")
        threads, runs = [], []
        for i in range(4):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": f"Story number {i}, please."}])
            client.beta.threads.messages.create(thread.id, role="user", content=f"Acknowledged message {i}")
            run = client.beta.threads.runs.create(
                thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=300
            )
            threads.append(thread.id)
            runs.append(run.id)
        deadline = time.monotonic() + 60
        while client.beta.threads.runs.retrieve(runs[0], thread_id=threads[0]).status == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        server.kill()

    restarted = ServerProcess(data_dir, **SETTINGS).start()
    try:
        client = connect(restarted)
        for i, (thread_id, run_id) in enumerate(zip(threads, runs, strict=True)):
            final = wait_terminal(client, thread_id, run_id, timeout=180)
            assert final.status in ("completed", "incomplete"), final.last_error
            messages = client.beta.threads.messages.list(thread_id, order="asc").data
            assert [m.content[0].text.value for m in messages[:2]] == [
                f"Story number {i}, please.",
                f"Acknowledged message {i}",
            ]
            replies = [m for m in messages if m.run_id == run_id]
            assert len(replies) == 1 and replies[0].status in ("completed", "incomplete")
            steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id).data
            assert [s.status for s in steps] == ["completed"]
    finally:
        restarted.stop()


def test_tool_outputs_expire(server) -> None:
    client = connect(server)
    assistant = client.beta.assistants.create(model=CHAT_MODEL, tools=WEATHER_TOOLS)
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
def test_sigkill_at_message_completed_leaves_one_reply(tmp_path, attempt) -> None:
    """The reply and the run's end commit together: a crash the moment the reply is announced, then a restart,
    never makes the run answer twice."""
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, **SETTINGS).start()
    try:
        client = connect(server)
        assistant = client.beta.assistants.create(model=CHAT_MODEL)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Name a colour."}])
        with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=40
        ) as stream:
            for event in stream:
                if event.event == "thread.message.completed":
                    server.kill()
                    break
            run_id = stream.current_run.id
    finally:
        server.kill()

    restarted = ServerProcess(data_dir, **SETTINGS).start()
    try:
        client = connect(restarted)
        final = wait_terminal(client, thread.id, run_id, timeout=60)
        assert final.status in ("completed", "incomplete"), final.last_error
        replies = [m for m in client.beta.threads.messages.list(thread.id).data if m.role == "assistant"]
        assert len(replies) == 1 and replies[0].run_id == run_id
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
