"""`assistd serve --workers 2` on the embedded SQLite store, without Redis: two API processes share the port
and the store, each with its own worker, so a run streamed by one process is often executed by the other;
the streams then read the run's events from the database. Every stream must still end completed, with the
answer the messages API returns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from deploy.localcluster import Server

RUNS = 6


def test_serve_with_two_processes_streams_every_run(tmp_path) -> None:
    server = Server(tmp_path, serve_args=["--workers", "2"])
    server.start(timeout=120)
    try:
        # the second process may come up a little later
        server.api_process.wait_for_log("Started server process", timeout=60, count=2)
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=180)
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
        assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200
    finally:
        server.stop()
