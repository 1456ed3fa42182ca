"""Quotas and rate limits per project and key, usage records and `/metrics`, against a real server whose limits
are set with the CLI (`assistd projects limits`), as an operator would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import assert_error_shape
from tests.server import ServerProcess, run_cli

MODEL = "smollm2-135m-instruct"


@dataclass
class Limited:
    server: ServerProcess

    def project(self, name: str, *limits: str) -> tuple[str, str]:
        """A new project with these `projects limits` options; its id and a key."""
        project_id = run_cli(self.server.data_dir, "projects", "create", name).strip()
        key = run_cli(self.server.data_dir, "keys", "create", "--project", name).strip()
        if limits:
            run_cli(self.server.data_dir, "projects", "limits", name, *limits)
        return project_id, key

    def key_id(self, project: str, key: str) -> str:
        listing = run_cli(self.server.data_dir, "keys", "list", "--project", project)
        redacted = f"{key[:6]}...{key[-4:]}"
        return next(line.split()[1] for line in listing.splitlines() if redacted in line)

    def http(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def client(self, key: str, retries: int = 0) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.server.base_url}/v1", api_key=key, max_retries=retries, timeout=120)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    data_dir: Path = tmp_path_factory.mktemp("limits")
    server = ServerProcess(data_dir, metrics="true", auth_cache_seconds="0.5").start()
    try:
        yield Limited(server)
    finally:
        server.stop()


def test_requests_per_minute_429_with_openai_headers(limited: Limited) -> None:
    limited.project("rpm-other")  # made first: its key must not be refused below
    _, other_key = limited.project("rpm-free")
    _, key = limited.project("rpm-three", "--rpm", "3")
    with limited.http(key) as http:
        remaining = []
        for _ in range(3):
            response = http.get("/v1/assistants")
            assert response.status_code == 200, response.text
            assert response.headers["x-ratelimit-limit-requests"] == "3"
            remaining.append(int(response.headers["x-ratelimit-remaining-requests"]))
        assert remaining == [2, 1, 0]
        refused = http.get("/v1/assistants")
    assert refused.status_code == 429
    error = assert_error_shape(refused)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "requests per minute" in error["message"]
    # one request a 20 s: the next one is 20 s away
    assert 15 <= float(refused.headers["retry-after"]) <= 21
    assert 15_000 <= float(refused.headers["retry-after-ms"]) <= 20_000
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    # another project (no limit) is served meanwhile
    with limited.http(other_key) as http:
        assert http.get("/v1/assistants").status_code == 200
        assert "x-ratelimit-limit-requests" not in http.get("/v1/assistants").headers


def test_the_sdk_retry_waits_for_retry_after(limited: Limited) -> None:
    _, key = limited.project("rpm-retry", "--rpm", "60")  # one request a second, 60 at once
    with limited.http(key) as http:
        answers = [http.get("/v1/models").status_code for _ in range(200)]
    assert 429 in answers, "the bucket of 60 never ran dry"  # however slow this machine is: refills 1/s
    statuses: list[int] = []
    recording = httpx.Client(event_hooks={"response": [lambda response: statuses.append(response.status_code)]})
    sdk = openai.OpenAI(
        base_url=f"{limited.server.base_url}/v1", api_key=key, max_retries=2, timeout=60, http_client=recording
    )
    started = time.monotonic()
    for _ in range(3):  # a token may come back just before the first call: the next one is refused then
        models = sdk.models.list()  # refused, waits retry-after-ms (under a second), then served
        assert any(model.id == MODEL for model in models.data)
        if 429 in statuses:
            break
    assert statuses[-2:] == [429, 200], statuses
    assert time.monotonic() - started < 10


def test_a_key_limit_is_stricter_than_its_project(limited: Limited) -> None:
    _, first = limited.project("key-limits")
    second = run_cli(limited.server.data_dir, "keys", "create", "--project", "key-limits").strip()
    key_id = limited.key_id("key-limits", first)
    shown = run_cli(limited.server.data_dir, "projects", "limits", "key-limits", "--key", key_id, "--rpm", "1")
    assert "requests_per_minute" in shown and "1" in shown
    time.sleep(1)  # the server remembers limits for auth_cache_seconds
    with limited.http(first) as http:
        assert http.get("/v1/assistants").status_code == 200
        assert http.get("/v1/assistants").status_code == 429
    with limited.http(second) as http:  # the project's other key has no limit of its own
        assert [http.get("/v1/assistants").status_code for _ in range(3)] == [200, 200, 200]


def test_tokens_per_minute(limited: Limited) -> None:
    _, key = limited.project("tpm", "--tpm", "40")
    client = limited.client(key)
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
    )
    assert answer.usage.total_tokens > 0
    spent = answer.usage.total_tokens
    for _ in range(5):  # each asks at least a token; the bucket of 40 runs dry
        try:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
            )
        except openai.RateLimitError as exc:
            assert exc.code == "rate_limit_exceeded"
            assert "tokens per minute" in exc.message
            assert exc.response.headers["x-ratelimit-limit-tokens"] == "40"
            assert float(exc.response.headers["retry-after"]) >= 1
            break
        spent += 1
    else:
        pytest.fail(f"no 429 after spending {spent} tokens of 40")
    # CRUD still works: only generation needs tokens
    assert client.beta.assistants.list().data == []


def test_active_runs_per_key(limited: Limited) -> None:
    _, key = limited.project("runs-limit")
    other = run_cli(limited.server.data_dir, "keys", "create", "--project", "runs-limit").strip()
    key_id = limited.key_id("runs-limit", key)
    run_cli(limited.server.data_dir, "projects", "limits", "runs-limit", "--key", key_id, "--runs", "2")
    time.sleep(1)
    client = limited.client(key)
    assistant = client.beta.assistants.create(model=MODEL, instructions="Write at length.")
    threads = [client.beta.threads.create(messages=[{"role": "user", "content": "Tell a story."}]) for _ in range(3)]
    runs = [
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=200)
        for thread in threads[:2]
    ]
    with pytest.raises(openai.RateLimitError) as refused:
        client.beta.threads.runs.create(thread_id=threads[2].id, assistant_id=assistant.id)
    assert refused.value.code == "rate_limit_exceeded"
    assert "runs queued or in progress" in refused.value.message
    assert client.beta.threads.runs.list(threads[2].id).data == []  # the refused create wrote nothing
    # the project's other key is served meanwhile
    served = limited.client(other).beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Hi"}]},
        max_completion_tokens=4,
    )
    assert served.status == "queued"
    for run in runs:
        client.beta.threads.runs.cancel(thread_id=run.thread_id, run_id=run.id)


def test_stored_bytes_quota(limited: Limited) -> None:
    _, key = limited.project("storage", "--stored-bytes", "100")
    client = limited.client(key, retries=2)
    client.files.create(file=("a.txt", b"a" * 60), purpose="assistants")
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as refused:
        client.files.create(file=("b.txt", b"b" * 60), purpose="assistants")
    assert time.monotonic() - started < 2  # x-should-retry: false, the SDK does not retry a spent quota
    assert refused.value.code == "insufficient_quota"
    assert [file.filename for file in client.files.list().data] == ["a.txt"]


def test_usage_per_day_and_model(limited: Limited) -> None:
    _, key = limited.project("usage")
    client = limited.client(key)
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assistant = client.beta.assistants.create(model=MODEL)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Hi"}]}, max_completion_tokens=4
    )
    assert run.status in ("completed", "incomplete")
    report = run_cli(limited.server.data_dir, "usage", "--project", "usage", "--days", "2")
    lines = [line for line in report.splitlines() if time.strftime("%Y-%m-%d", time.gmtime()) in line]
    by_model = {line.split("│")[2].strip(): line for line in lines}
    assert set(by_model) == {MODEL, "text-embedding-3-small"}, report
    numbers = [int(cell.strip().replace(",", "")) for cell in by_model[MODEL].split("│")[3:8]]
    calls, prompt, _cached, completion, total = numbers
    assert calls == 2  # the chat completion and the run's one round
    assert prompt == chat.usage.prompt_tokens + run.usage.prompt_tokens
    assert completion == chat.usage.completion_tokens + run.usage.completion_tokens
    assert total == prompt + completion
    assert f"{embedding.usage.prompt_tokens}" in by_model["text-embedding-3-small"]


def test_metrics(limited: Limited) -> None:
    _, key = limited.project("metrics", "--rpm", "1")
    with limited.http(key) as http:
        http.get("/v1/assistants")
        assert http.get("/v1/assistants").status_code == 429
    text = httpx.get(f"{limited.server.base_url}/metrics", timeout=10).text
    assert 'assistd_http_requests_total{method="GET",route="/v1/assistants",status="429"}' in text
    assert 'assistd_rate_limited_total{limit="requests"}' in text
    assert 'assistd_queue_depth{queue="runs"}' in text
    assert 'assistd_queue_depth{queue="ingestion"}' in text
    assert "assistd_http_request_duration_seconds_bucket" in text
    assert 'assistd_tokens_total{kind="chat.completion"' in text  # from the tests before
    assert "assistd_runs_finished_total" in text
    assert "assistd_run_queue_wait_seconds" in text


def test_metrics_are_off_by_default(env) -> None:
    assert httpx.get(f"{env.base_url}/metrics", timeout=10).status_code == 404
