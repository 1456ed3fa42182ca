"""Faults in a scaled-out deployment (deploy/localcluster.py: PostgreSQL with pgvector, Redis, two API
processes, two `assistd worker` processes), with the official SDK against the real processes and a stub
upstream model that answers slowly enough to be interrupted:

- a worker SIGKILLed mid-run: another worker takes the run over when the lease runs out and completes it;
- PostgreSQL restarted under traffic: 503 with Retry-After while it is down, recovery without restarting
  anything, and every acknowledged write still there;
- Redis stopped: runs complete, streams fall back to the database and still end with `thread.run.completed`.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from deploy.localcluster import Cluster, Postgres, Redis
from deploy.stub_upstream import create_app, models_file, serving
from tests.server import query_value

TOKENS, DELAY = 40, 0.05  # a stub answer takes 2 s
ANSWER = "".join(f"word{i} " for i in range(TOKENS))
LEASE_SECONDS = 3
SETTLE_SECONDS = 40  # bound for any run to finish after a fault


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("cluster")
    with serving(create_app(TOKENS, DELAY)) as upstream_url:  # the stub model in a thread of the test process
        (root / "models.toml").write_text(models_file(upstream_url))
        cluster = Cluster(
            root,
            postgres=Postgres(Path(tempfile.mkdtemp(prefix="assistd-pg-")) / "pg").start(),
            api=2,
            workers=2,
            extra_env={
                "ASSISTD_MODELS_FILE": str(root / "models.toml"),
                "ASSISTD_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
                "ASSISTD_DATABASE_RETRY_SECONDS": "1",
                "ASSISTD_AUTH_CACHE_SECONDS": "0",
            },
        )
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="module")
def key(cluster: Cluster) -> str:
    cluster.cli("projects", "create", "faults")
    return cluster.cli("keys", "create", "--project", "faults").strip()


def sdk(cluster: Cluster, key: str, api: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.base_urls[api]}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def assistant_id(cluster: Cluster, key: str) -> str:
    return sdk(cluster, key).beta.assistants.create(model="stub", instructions="Answer.").id


def wait_for_status(client: openai.OpenAI, thread_id: str, run_id: str, statuses: set[str], timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        except openai.APIStatusError as exc:  # 503 while the database is away
            assert exc.status_code == 503
        else:
            if run.status in statuses:
                return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not reach {statuses} in {timeout} s")


def answer_of(client: openai.OpenAI, thread_id: str) -> list[str]:
    messages = client.beta.threads.messages.list(thread_id, order="asc").data
    return [part.text.value for message in messages if message.role == "assistant" for part in message.content]


def test_a_killed_worker_s_run_is_finished_by_another(cluster: Cluster, key: str, assistant_id: str) -> None:
    client = sdk(cluster, key)
    run = client.beta.threads.create_and_run(
        assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": "Count."}]}
    )
    wait_for_status(client, run.thread_id, run.id, {"in_progress"}, 15)
    owner = None
    while owner is None:
        owner = query_value(cluster.database_url, f"SELECT lease_owner FROM runs WHERE id = '{run.id}'")
    victim = next(worker for worker in cluster.worker_processes if owner in worker.log_text())
    time.sleep(DELAY * TOKENS / 3)  # partway through the answer
    victim.kill()
    killed_at = time.monotonic()

    done = wait_for_status(client, run.thread_id, run.id, {"completed", "failed"}, SETTLE_SECONDS)
    assert done.status == "completed"
    assert time.monotonic() - killed_at < LEASE_SECONDS + DELAY * TOKENS + 10
    assert answer_of(client, run.thread_id) == [ANSWER]  # the interrupted attempt left nothing behind
    assert query_value(cluster.database_url, f"SELECT attempts FROM runs WHERE id = '{run.id}'") == 2
    cluster.worker_processes.remove(victim)
    cluster.start_worker(wait=True)


def test_postgres_restart_gives_503_then_recovers_without_losing_writes(
    cluster: Cluster, key: str, assistant_id: str
) -> None:
    client = sdk(cluster, key)
    run = client.beta.threads.create_and_run(
        assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": "Count."}]}
    )
    thread = client.beta.threads.create()  # the writes go to another thread (a thread with a run takes none)
    acknowledged: list[str] = []
    statuses: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            while not stop.is_set():
                for base_url in cluster.base_urls:
                    try:
                        response = http.post(
                            f"{base_url}/v1/threads/{thread.id}/messages",
                            json={"role": "user", "content": f"note {len(statuses)}"},
                            headers={"OpenAI-Beta": "assistants=v2"},
                        )
                    except httpx.TransportError:
                        statuses.append((time.monotonic(), 0, None))
                        continue
                    statuses.append((time.monotonic(), response.status_code, response.headers.get("retry-after")))
                    if response.status_code == 200:
                        acknowledged.append(response.json()["id"])
                    elif response.status_code == 503:
                        assert response.json()["error"]["code"] == "database_unavailable"
                time.sleep(0.02)

    writer = threading.Thread(target=traffic)
    writer.start()
    try:
        time.sleep(1)
        assert cluster.postgres is not None
        cluster.postgres.stop()
        down_at = time.monotonic()
        time.sleep(4)
        cluster.postgres.resume()
        up_at = time.monotonic()
        time.sleep(4)
    finally:
        stop.set()
        writer.join(timeout=60)

    during = [(status, retry) for at, status, retry in statuses if down_at + 1.5 < at < up_at]
    assert during and all(status == 503 and retry == "1" for status, retry in during), during
    after = [status for at, status, _ in statuses if at > up_at + 2]
    assert after and all(status == 200 for status in after), after
    stored = {message.id for message in client.beta.threads.messages.list(thread.id, limit=100)}  # every page
    assert set(acknowledged) <= stored and len(acknowledged) > 10
    # the run that was under way when the database went away ends completed, once
    done = wait_for_status(client, run.thread_id, run.id, {"completed", "failed", "cancelled"}, SETTLE_SECONDS)
    assert done.status == "completed"
    assert answer_of(client, run.thread_id) == [ANSWER]


class Recorder(openai.AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def on_event(self, event) -> None:
        self.names.append(event.event)


def stream_run(client: openai.OpenAI, assistant_id: str) -> tuple[Recorder, str]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Count."}])
    recorder = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id, event_handler=recorder) as s:
        s.until_done()
    return recorder, thread.id


def test_without_redis_runs_complete_and_streams_read_the_database(
    cluster: Cluster, key: str, assistant_id: str
) -> None:
    client = sdk(cluster, key, api=1)
    recorder, thread_id = stream_run(client, assistant_id)
    assert "thread.message.delta" in recorder.names  # with Redis: token by token
    assert recorder.names[-1] == "thread.run.completed"

    assert cluster.redis is not None
    port = cluster.redis.port
    cluster.redis.stop()
    try:
        recorder, thread_id = stream_run(client, assistant_id)
        assert recorder.names[0] == "thread.run.created"
        assert recorder.names[-1] == "thread.run.completed"
        assert "thread.message.completed" in recorder.names
        assert answer_of(client, thread_id) == [ANSWER]
        polled = client.beta.threads.create_and_run_poll(
            assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": "Again."}]}
        )
        assert polled.status == "completed"
    finally:
        cluster.redis = Redis(port=port).start()
    recorder, _ = stream_run(client, assistant_id)  # Redis is back: events flow through it again
    assert "thread.message.delta" in recorder.names and recorder.names[-1] == "thread.run.completed"
