"""A fresh data directory: first project and key made once; a 200 survives SIGKILL of the server."""

from __future__ import annotations

import stat

import openai

from tests.conftest import checked_http_client
from tests.server import ServerProcess


def test_first_start_creates_a_key_once_and_writes_survive_a_crash(tmp_path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir).start()
    try:
        key_file = data_dir / "api_key"
        key = key_file.read_text().strip()
        assert key.startswith("sk-") and len(key) >= 40
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert server.log_text().count(key) == 1, "the first key is printed once"

        client = openai.OpenAI(
            base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, http_client=checked_http_client()
        )
        assistant = client.beta.assistants.create(model="local", name="durable")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(5)])
        message = client.beta.threads.messages.create(thread.id, role="user", content="last word")
    finally:
        server.kill()

    restarted = ServerProcess(data_dir)
    restarted.start()
    try:
        assert restarted.log_text().count(key) == 1, "a restart must not make or print another key"
        client = openai.OpenAI(
            base_url=f"{restarted.base_url}/v1", api_key=key, max_retries=0, http_client=checked_http_client()
        )
        assert client.beta.assistants.retrieve(assistant.id).name == "durable"
        texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread.id, order="asc")]
        assert texts == [f"m{i}" for i in range(5)] + ["last word"]
        assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id).id == message.id
    finally:
        restarted.stop()
