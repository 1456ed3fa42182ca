"""Every script in examples/ runs against the real server with only the official SDK and the OpenAI
environment variables, and prints what it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


def run_example(env, name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env={**os.environ, "OPENAI_BASE_URL": f"{env.base_url}/v1", "OPENAI_API_KEY": env.key_a},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_classic_completions(env) -> None:
    output = run_example(env, "completions_classic.py")
    assert output.strip().endswith("tokens)") and len(output.splitlines()) == 2


def test_customer_service_cites_the_faq(env) -> None:
    output = run_example(env, "customer_service.py", "How long is the warranty on a lamp?")
    assert "faq.md" in output  # the citation line names the file


@pytest.mark.parametrize("style", ["paragraph", "key-points"])
def test_summarize_file(env, style: str) -> None:
    output = run_example(env, "summarize_file.py", str(EXAMPLES / "faq.md"), style)
    assert output.strip()
    if style == "key-points":
        assert set(json.loads(output)) == {"summary", "key_points"}


def test_translate_file_keeps_code(env, tmp_path) -> None:
    source = tmp_path / "note.md"
    source.write_text("# Note\n\nRun this:\n\n```sh\nmake serve\n```\n")
    assert "```sh\nmake serve\n```" in run_example(env, "translate_file.py", str(source), "es")


def test_stream_events(env) -> None:
    output = run_example(env, "stream_events.py")
    assert output.startswith("[step message_creation]")
    assert output.rstrip().endswith(("[run completed]", "[run incomplete]"))  # incomplete: cut at 120 tokens


def test_function_calling_loop(env) -> None:
    output = run_example(env, "function_calling.py")
    assert output.startswith("model called get_weather(")
    # the model answers (completed, or cut at the example's token bound), or keeps calling and is stopped
    last = output.splitlines()[-1]
    assert last.startswith(("completed -", "incomplete -")) or last.endswith("run cancelled"), output
