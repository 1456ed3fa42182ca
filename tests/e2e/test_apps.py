"""The ready-made applications and the response-language extension, through the CLI and the official SDK
against the real server and the bundled model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import openai
import pytest

from assistd.apps.presets import HANDOFF_TOOL, KEY_POINTS_FORMAT, summary_run_options, translation_run_options
from tests.e2e.test_models import CHAT_MODEL
from tests.server import run_cli

# the app presets with the real model: what they assert is the model's and the apps' behaviour, and the run paths
# they take are covered scaled out by test_runs and test_examples, so the PostgreSQL pass skips them
pytestmark = pytest.mark.backend_independent

FAQ = Path(__file__).parents[2] / "examples" / "faq.md"


def install(env, preset: str, *options: str) -> str:
    """`assistd apps install` against the running server's data directory, as project alpha."""
    return run_cli(env.server.data_dir, "apps", "install", preset, "--project", "alpha", *options).strip()


@pytest.fixture(scope="module")
def support(env, client: openai.OpenAI) -> openai.types.beta.Assistant:
    assistant_id = install(env, "customer-service", "--vector-store", "northwind-faq")
    assistant = client.beta.assistants.retrieve(assistant_id)
    (store_id,) = assistant.tool_resources.file_search.vector_store_ids
    with FAQ.open("rb") as handle:
        batch = client.vector_stores.file_batches.upload_and_poll(store_id, files=[handle], poll_interval_ms=100)
    assert batch.file_counts.completed == 1
    return assistant


def ask(client: openai.OpenAI, assistant_id: str, question: str, **run_options):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=100, **run_options
    )
    return run, client.beta.threads.messages.list(thread.id).data[0]


def test_presets_install_as_configured_assistants(env, client: openai.OpenAI, support) -> None:
    assert support.metadata == {"assistd_app": "customer-service"} and support.model == CHAT_MODEL
    assert support.model_extra["app"] == "customer-service"  # the assistd extension field that runs copy
    assert [tool.type for tool in support.tools] == ["file_search", "function"]
    assert support.tools[1].function.name == HANDOFF_TOOL["function"]["name"]
    summarizer = client.beta.assistants.retrieve(install(env, "summarizer", "--name", "Digest"))
    assert summarizer.name == "Digest" and summarizer.metadata == {"assistd_app": "summarizer"}
    assert summarizer.model_extra["app"] == "summarizer"
    assert "customer-service" in run_cli(env.server.data_dir, "apps", "list")


def test_customer_service_cites_the_faq(client: openai.OpenAI, support) -> None:
    run, reply = ask(client, support.id, "How long is the warranty on a lamp?")
    assert run.status == "completed", run.last_error
    text = reply.content[0].text
    assert "3" in text.value
    faq_file = client.vector_stores.files.list(support.tool_resources.file_search.vector_store_ids[0]).data[0].id
    assert [a.file_citation.file_id for a in text.annotations] == [faq_file]


def test_customer_service_invents_no_citation(client: openai.OpenAI, support) -> None:
    run, reply = ask(client, support.id, "What is the boiling point of mercury in kelvin?")
    assert run.status == "completed", run.last_error
    assert reply.content[0].text.annotations == []
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=reply.thread_id).data
    search = next(s for s in steps if s.type == "tool_calls").step_details.tool_calls[0].file_search
    assert search.results == []  # nothing in the FAQ is about it, so nothing reached the model


def test_summarizer_key_points_are_json(env, client: openai.OpenAI) -> None:
    assistant_id = install(env, "summarizer")
    run, reply = ask(client, assistant_id, FAQ.read_text(), **summary_run_options("key-points", words=60))
    assert run.status == "completed", run.last_error
    jsonschema.validate(json.loads(reply.content[0].text.value), KEY_POINTS_FORMAT["json_schema"]["schema"])


def test_response_language_is_an_extension_field(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL, extra_body={"response_language": "de"})
    assert assistant.model_extra["response_language"] == "de"
    updated = client.beta.assistants.update(assistant.id, extra_body={"response_language": "French"})
    assert updated.model_extra["response_language"] == "French"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    inherited = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    assert inherited.model_extra["response_language"] == "French"
    options = translation_run_options("es", glossary={"lamp": "lámpara"})
    overridden = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        poll_interval_ms=100,
        additional_instructions=options["additional_instructions"],
        extra_body={"response_language": options["response_language"]},
    )
    assert overridden.model_extra["response_language"] == "es"
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.create(model=CHAT_MODEL, extra_body={"response_language": "fr; drop table"})
    assert caught.value.body["param"] == "response_language"


DOCUMENT = """# Welcome, {name}

Your order ships in %s days. Track it at https://example.com/track?id=42 or run `lamp-status --all`.

```python
def greet(name):
    return f"Hello {name}!"  # keep me exactly
```

- Reply to {{support_email}} with questions.
"""


def test_translator_keeps_code_and_placeholders_byte_identical(env, client: openai.OpenAI) -> None:
    assistant_id = install(env, "translator")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": DOCUMENT}])
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, extra_body={"response_language": "fr"}
    ) as stream:
        streamed = "".join(
            event.data.delta.content[0].text.value for event in stream if event.event == "thread.message.delta"
        )
        final = stream.get_final_messages()[0].content[0].text.value
    assert streamed == final
    fence = DOCUMENT[DOCUMENT.index("```python") : DOCUMENT.index("```\n", DOCUMENT.index("```python") + 3) + 4]
    assert fence in final
    for kept in ("{name}", "%s", "https://example.com/track?id=42", "`lamp-status --all`", "{{support_email}}"):
        assert kept in final, kept
    assert final.startswith("# ") and "\n- " in final


def client_cli(env, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`assistd ARGS` as a client of the session server, configured the OpenAI way (environment variables)."""
    return subprocess.run(
        [sys.executable, "-m", "assistd", *args],
        env={**os.environ, "OPENAI_BASE_URL": f"{env.base_url}/v1", "OPENAI_API_KEY": env.key_a, "COLUMNS": "200"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_summarize_and_translate(env, tmp_path) -> None:
    summary = client_cli(env, "summarize", str(FAQ), "--style", "key-points")
    assert summary.returncode == 0, summary.stderr
    jsonschema.validate(json.loads(summary.stdout), KEY_POINTS_FORMAT["json_schema"]["schema"])
    bullets = client_cli(env, "summarize", "-", "--style", "bullets", "--words", "40", stdin=FAQ.read_text())
    assert bullets.returncode == 0 and bullets.stdout.strip(), bullets.stderr

    source = tmp_path / "welcome.md"
    source.write_text(DOCUMENT)
    translated = client_cli(env, "translate", "--to", "de", str(source))
    assert translated.returncode == 0, translated.stderr
    assert (
        'return f"Hello {name}!"  # keep me exactly' in translated.stdout and "{{support_email}}" in translated.stdout
    )


def test_cli_chat_streams_answers_and_lists_citations(env, support) -> None:
    result = client_cli(env, "chat", "--assistant", support.id, stdin="How long is the warranty on a lamp?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("assistant> ") and "faq.md" in result.stdout


def test_cli_clients_need_a_key_and_a_server(env) -> None:
    no_key = subprocess.run(
        [sys.executable, "-m", "assistd", "summarize", str(FAQ)],
        env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_key.returncode == 1 and "OPENAI_API_KEY" in no_key.stderr
    unreachable = client_cli(env, "summarize", str(FAQ), "--base-url", "http://127.0.0.1:9/v1")
    assert unreachable.returncode == 1 and "cannot reach the server" in unreachable.stderr


def test_summarizer_reads_a_text_longer_than_the_context(env, client: openai.OpenAI) -> None:
    assistant_id = install(env, "summarizer")
    faq = FAQ.read_text()
    long_text = "\n\n".join([faq] * 30)  # about 1.4 times the bundled model's 8,192-token context
    run, reply = ask(client, assistant_id, long_text, **summary_run_options("tldr", words=40))
    assert run.status in ("completed", "incomplete"), run.last_error  # incomplete: cut at the target length
    assert reply.content[0].text.value.strip()
    # every part was read: the prompts of the part summaries add up to more than the whole context
    assert run.usage.prompt_tokens > 8192
