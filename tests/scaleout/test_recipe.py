"""The documented one-machine recipe (docs/deployment.md), run as a user would: `deploy/localcluster.py`
starts PostgreSQL, Redis, two API processes and two workers; a run made through one API process is streamed
through the other; Ctrl-C stops every process, and a second start finds the same data."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

SCRIPT = Path(__file__).parents[2] / "deploy" / "localcluster.py"


def start(root: Path) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--api", "2", "--workers", "2", "--dir", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    urls: list[str] = []
    deadline = time.monotonic() + 180
    assert process.stdout is not None
    while len(urls) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the recipe stopped: exit {process.wait()}")
        if match := re.match(r"API: (\S+)", line):
            urls.append(match.group(1))
    return process, urls


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0


def test_local_cluster_recipe() -> None:
    root = Path(tempfile.mkdtemp(prefix="assistd-recipe-"))
    process, urls = start(root)
    try:
        key = (root / "data" / "api_key").read_text().strip()
        first, second = (openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120) for url in urls)
        assistant = first.beta.assistants.create(model="smollm2-135m-instruct", instructions="Be brief.")
        thread = first.beta.threads.create(messages=[{"role": "user", "content": "Name a colour."}])
        with second.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            stream.until_done()
            final = stream.get_final_run()
        assert final.status == "completed"
        assert first.beta.threads.messages.list(thread.id).data[0].role == "assistant"
    finally:
        stop(process)
    assert not list(root.glob("pg/postmaster.pid")), "PostgreSQL still running"

    process, urls = start(root)  # the same directory again: same database, same key
    try:
        client = openai.OpenAI(base_url=urls[0], api_key=key, max_retries=0, timeout=60)
        assert client.beta.assistants.retrieve(assistant.id).id == assistant.id
    finally:
        stop(process)
