"""`assistd serve --workers 2` on the embedded SQLite store, without Redis: two API processes share the port
and the store, each with its own worker, so a run streamed by one process is often executed by the other;
the streams then read the run's events from the database. Every stream must still end completed, with the
answer the messages API returns."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from deploy.localcluster import free_port, wait_healthy

RUNS = 6


def test_serve_with_two_processes_streams_every_run(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "ASSISTD_DATA_DIR": str(tmp_path), "ASSISTD_PORT": str(port)}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "assistd", "serve", "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, timeout=120)
        deadline = time.monotonic() + 60  # the second process may come up a little later
        while len(set(re.findall(r"Started server process \[(\d+)\]", log_path.read_text()))) < 2:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        key = (tmp_path / "api_key").read_text().strip()
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=180)
        assistant = client.beta.assistants.create(model="smollm2-135m-instruct", instructions="Be brief.")

        def streamed_run(index: int) -> tuple[str, str, str]:
            thread = client.beta.threads.create(messages=[{"role": "user", "content": f"Say a number above {index}."}])
            with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
                streamed = "".join(stream.text_deltas)
                status = stream.get_final_run().status
            stored = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
            return status, streamed, stored

        with ThreadPoolExecutor(RUNS) as pool:
            results = list(pool.map(streamed_run, range(RUNS)))
        for status, streamed, stored in results:
            assert status == "completed"
            assert streamed == stored and stored
        assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
