"""The CLI's clients (`assistd chat`, `summarize`, `translate`): they talk to a running server over HTTP with
the official `openai` SDK, as any user's code would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
from openai.lib.streaming import AssistantEventHandler

from assistd.apps.presets import APP_KEY, PRESETS
from assistd.engines.registry import DEFAULT_TEXT_MODEL


def connect(base_url: str | None, api_key: str | None) -> openai.OpenAI:
    """An SDK client of the server at `base_url` (default: the local `make serve`)."""
    if not api_key:
        raise RuntimeError("no API key: pass --api-key or set OPENAI_API_KEY (`make serve` saved one in data/api_key)")
    return openai.OpenAI(base_url=base_url or "http://127.0.0.1:8000/v1", api_key=api_key)


def installed(client: openai.OpenAI, preset: str, model: str | None = None) -> str:
    """The id of the newest assistant installed from `preset`, installing one through the API if there is none."""
    for assistant in client.beta.assistants.list(order="desc", limit=100):
        if (assistant.metadata or {}).get(APP_KEY) == preset and (model is None or assistant.model == model):
            return assistant.id
    body = PRESETS[preset].assistant_body(model or DEFAULT_TEXT_MODEL)
    app = body.pop("app")  # an assistd extension field: the SDK sends it as an extra
    return client.beta.assistants.create(**body, extra_body={"app": app}).id


class _Printer(AssistantEventHandler):
    """Writes each text delta as it arrives."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__()
        self.write = write

    def on_text_delta(self, delta, snapshot) -> None:
        self.write(delta.value or "")


def ask(
    client: openai.OpenAI,
    thread_id: str,
    assistant_id: str,
    write: Callable[[str], None],
    **run_options: Any,
) -> Any:
    """Run the assistant on the thread, streaming the answer through `write`; returns the final message."""
    extra = {"response_language": run_options.pop("response_language")} if "response_language" in run_options else None
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=_Printer(write), extra_body=extra, **run_options
    ) as stream:
        stream.until_done()
        messages = stream.get_final_messages()
        run = stream.get_final_run()
    if run.status == "incomplete":
        reason = run.incomplete_details.reason if run.incomplete_details else "unknown"
        write(f"\n[cut off: {reason}]")
    elif run.status != "completed":
        error = run.last_error.message if run.last_error else run.status
        raise RuntimeError(f"the run ended {run.status}: {error}")
    return messages[-1] if messages else None


def citations(client: openai.OpenAI, message: Any) -> list[str]:
    """Lines naming the files a message cites."""
    lines = []
    for annotation in message.content[0].text.annotations if message and message.content else []:
        if annotation.type == "file_citation":
            try:
                name = client.files.retrieve(annotation.file_citation.file_id).filename
            except openai.NotFoundError:
                name = annotation.file_citation.file_id
            lines.append(f"{annotation.text} {name}")
    return lines


def pretty_json(text: str) -> str:
    """Indented JSON when `text` is JSON, else `text` as it is."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
