"""Connections and processes under strain, each on a server of its own: a request head that stalls, a client
that leaves a long generation, SIGTERM while the model is busy (a request's generation on the bundled model, or
a run's on the deterministic stub upstream)."""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import pytest

from deploy import stub_upstream
from deploy.localcluster import Server
from tests.conftest import assert_error_shape
from tests.e2e.test_models import CHAT_MODEL
from tests.e2e.test_run_protocol import STUB_MODEL, connect, stub_server, wait_terminal
from tests.e2e.test_run_recovery import SETTINGS
from tests.server import ServerProcess, query_value

HEAD_TIMEOUT = 1.0
# Grammar-bound to a million characters of JSON: the model generates until max_tokens (minutes on these CPUs).
ENDLESS = {
    "type": "json_schema",
    "json_schema": {
        "name": "endless",
        "schema": {"type": "array", "minItems": 1000, "items": {"type": "string", "minLength": 1000}},
    },
}


def long_chat(**extra) -> dict:
    return {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "Write."}],
        "max_tokens": 4000,
        "response_format": ENDLESS,
        **extra,
    }


def api_key(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {(server.data_dir / 'api_key').read_text().strip()}"}


def read_until_closed(connection: socket.socket) -> bytes:
    answer = b""
    while part := connection.recv(4096):
        answer += part
    return answer


def read_response(connection: socket.socket) -> bytes:
    """One response with a Content-Length body, leaving the connection open."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(4096)
    head, body = answer.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += connection.recv(4096)
    return head


def assert_head_timeout(port: int, kept_alive: bool = False) -> None:
    """A partial head, on a new connection or after a first request on it: 408, then closed, after the timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        if kept_alive:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(connection).startswith(b"HTTP/1.1 200")
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = read_until_closed(connection)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer, answer
    assert b'"invalid_request_error"' in answer
    assert HEAD_TIMEOUT * 0.8 < waited < HEAD_TIMEOUT + 4, waited


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(
        tmp_path_factory.mktemp("lifecycle") / "data", header_read_timeout_seconds=str(HEAD_TIMEOUT)
    ).start()
    yield process
    process.stop()


@pytest.mark.parametrize("kept_alive", [False, True], ids=["new connection", "kept-alive connection"])
def test_a_stalled_request_head_gets_408_and_the_connection_closes(server, kept_alive) -> None:
    assert_head_timeout(server.port, kept_alive)


def test_a_connection_that_sends_nothing_is_closed(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        started = time.monotonic()
        assert read_until_closed(connection) == b""
        assert time.monotonic() - started < HEAD_TIMEOUT + 4


def test_a_slow_head_that_completes_in_time_is_served(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        for part in (b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            connection.sendall(part)
            time.sleep(HEAD_TIMEOUT / 4)
        assert read_response(connection).startswith(b"HTTP/1.1 200")
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200


def test_a_client_that_leaves_a_completion_stops_its_generation(server) -> None:
    """Non-streamed: nothing is sent before the answer, so only the disconnect can tell the server to stop."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json=long_chat(),
            headers=api_key(server),
            timeout=httpx.Timeout(30, read=1.5),
        )
    server.api_process.wait_for_log("client disconnected: POST /v1/chat/completions abandoned", timeout=15)
    server.api_process.wait_for_log(re.compile(r"generation on \S+ stopped"), timeout=15)
    before = server.cpu_seconds()
    time.sleep(3)
    assert server.cpu_seconds() - before < 1.0  # generating takes at least one core
    started = time.monotonic()
    answer = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5},
        headers=api_key(server),
        timeout=120,
    )
    assert answer.status_code == 200
    assert time.monotonic() - started < 60  # the abandoned generation had minutes of tokens to go


@pytest.mark.parametrize("stream", [False, True], ids=["blocking", "streamed"])
def test_sigterm_during_a_long_generation_exits_within_seconds(tmp_path, stream) -> None:
    server = ServerProcess(tmp_path / "data").start()  # the default graceful_shutdown_seconds: 5
    answers: list[httpx.Response | Exception] = []
    generating = threading.Event()

    def generate() -> None:
        url, body = f"{server.base_url}/v1/chat/completions", long_chat(stream=stream)
        try:
            if not stream:
                answers.append(httpx.post(url, json=body, headers=api_key(server), timeout=120))
                return
            with httpx.stream("POST", url, json=body, headers=api_key(server), timeout=120) as response:
                for _ in response.iter_raw():
                    generating.set()
        except httpx.HTTPError as exc:  # a stream cut short
            answers.append(exc)

    client = threading.Thread(target=generate)
    try:
        client.start()
        if stream:
            assert generating.wait(60)
        else:
            time.sleep(3)
        assert server.process.poll() is None
        assert server.terminate(timeout=60) < 15
        client.join(30)
        assert "stopped after" in server.log_text() or "stopped in its prompt" in server.log_text()
        if not stream:  # cut short by the shutdown: a retryable 503 in OpenAI's shape
            (answer,) = answers
            assert isinstance(answer, httpx.Response) and answer.status_code == 503
            assert_error_shape(answer)
    finally:
        server.kill()


def test_sigterm_during_a_run_hands_it_back(tmp_path) -> None:
    data_dir, text = tmp_path / "data", " ".join(f"w{i}" for i in range(100))
    with stub_upstream.serving(stub_upstream.create_app(8, 0.0)) as stub_url:
        server = stub_server(data_dir, stub_url, **SETTINGS).start()
        try:
            client = connect(server)
            assistant = client.beta.assistants.create(model=STUB_MODEL)
            thread = client.beta.threads.create(messages=[{"role": "user", "content": f"say: {text}\ndelay: 0.05"}])
            run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
            deadline = time.monotonic() + 60
            while client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "queued":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1)  # the model is at work
            assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "in_progress"
            assert server.terminate(timeout=60) < 15
            assert query_value(server.database_url, f"SELECT lease_owner FROM runs WHERE id = '{run.id}'") is None
        finally:
            server.kill()

        restarted = stub_server(data_dir, stub_url, **SETTINGS).start()
        try:
            client = connect(restarted)
            final = wait_terminal(client, thread.id, run.id, timeout=180)
            assert final.status == "completed", final.last_error
            replies = [m for m in client.beta.threads.messages.list(thread.id).data if m.role == "assistant"]
            assert [(m.run_id, m.content[0].text.value) for m in replies] == [(run.id, text)]
        finally:
            restarted.stop()


def test_serve_with_several_processes_has_the_head_timeout_and_stops_on_sigterm(tmp_path) -> None:
    """`assistd serve --workers 2` hands uvicorn's supervisor the same options (pickled for each process)."""
    env = {"ASSISTD_HEADER_READ_TIMEOUT_SECONDS": str(HEAD_TIMEOUT)}
    server = Server(tmp_path, env, serve_args=["--workers", "2"]).start(timeout=120)
    try:
        server.api_process.wait_for_log("Started server process", timeout=60, count=2)
        for _ in range(4):  # connections land on either process
            assert_head_timeout(server.port)
        assert server.terminate(timeout=60) < 15
    finally:
        server.kill()
