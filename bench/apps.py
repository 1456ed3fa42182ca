"""How well the ready-made applications do with the bundled model: quality claims that depend on the model
live here, measured, rather than in tests that a 135M-parameter model could flake on.

Starts `python -m assistd serve` (temporary data directory, stopped and removed at the end), installs the three
presets through the API exactly as `assistd apps install` configures them, and with the official `openai` SDK:

1. customer-service over examples/faq.md: for questions the FAQ answers, the share of answers that contain the
   expected fact and the share that cite faq.md; for questions it does not answer, the share with no citation
   (no invented source) and the share whose file_search found nothing; for requests to talk to a person, the
   share of runs that call handoff_to_human (requires_action).
2. summarizer: key points as JSON (json_schema) that parse and validate; a document about 3 times the model's
   context summarised part by part (map-reduce): completed, and how long it took.
3. translator (French): code blocks and placeholders kept byte for byte, and the share of prose lines that the
   translation changed at all (the model's part; the guard makes the first a certainty).

Usage: python bench/apps.py [--model ID]   (default: smollm2-135m-instruct)
Exit status 0 when the measurements completed, whatever the numbers; non-zero on any error.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jsonschema
import openai
from _server import exit_with, running_server

from assistd.apps.presets import CUSTOMER_SERVICE, KEY_POINTS_FORMAT, PRESETS, summary_run_options

FAQ = Path(__file__).resolve().parents[1] / "examples" / "faq.md"
ANSWERED = [
    ("How long does delivery take within the EU?", "3 to 5"),
    ("How much does standard shipping cost?", "4.90"),
    ("Within how many days can I return a lamp?", "30"),
    ("How long is the warranty on the lamps?", "3"),
    ("Which bulb does the Aurora desk lamp take?", "E14"),
    ("How long are bulbs covered?", "1 year"),
    ("When will I get my refund?", "10 days"),
    ("What are the support phone hours?", "9:00"),
    ("Which gift card values do you sell?", "25"),
    ("How do I reset the Halo touch dimmer?", "30 seconds"),
]
UNANSWERED = [
    "What is the boiling point of mercury in kelvin?",
    "Who painted the Mona Lisa?",
    "What is the capital of Australia?",
    "How many legs does a spider have?",
    "What year did the first moon landing happen?",
]
HANDOFF = [
    "I want to talk to a human, please.",
    "Can I speak to a real person?",
    "Put me through to an agent.",
    "I need a human agent right now.",
    "Connect me with your support staff, not a bot.",
]
TRANSLATE = """# Care of your lamp

Clean the shade with a dry cloth. Never use water on the {model} base.

```sh
lamp-reset --hard
```

- Replace the bulb with a %s watt LED.
- Write to {{support_email}} when in doubt.
"""


def ask(client: openai.OpenAI, assistant_id: str, text: str, **options) -> tuple[object, object]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=100, **options
    )
    messages = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    return run, (messages[0] if messages else None)


def share(hits: int, total: int) -> str:
    return f"{hits}/{total} ({hits / total:.0%})"


def customer_service(client: openai.OpenAI, model: str) -> list[str]:
    store = client.vector_stores.create(name="faq")
    with FAQ.open("rb") as handle:
        client.vector_stores.file_batches.upload_and_poll(store.id, files=[handle], poll_interval_ms=100)
    body = CUSTOMER_SERVICE.assistant_body(model)
    assistant = client.beta.assistants.create(**body, tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    correct = cited = 0
    for question, fact in ANSWERED:
        run, message = ask(client, assistant.id, question)
        text = message.content[0].text if message else None
        correct += bool(text and fact.lower() in text.value.lower())
        cited += bool(text and any(a.type == "file_citation" for a in text.annotations))
    uncited = found_nothing = 0
    for question in UNANSWERED:
        run, message = ask(client, assistant.id, question)
        uncited += bool(message is None or not message.content[0].text.annotations)
        steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data
        searches = [
            c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls if c.type == "file_search"
        ]
        found_nothing += bool(searches and not searches[0].file_search.results)
    handed_off = 0
    for request in HANDOFF:
        run, _ = ask(client, assistant.id, request)
        calls = run.required_action.submit_tool_outputs.tool_calls if run.status == "requires_action" else []
        handed_off += any(call.function.name == "handoff_to_human" for call in calls)
        if run.status == "requires_action":
            client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    return [
        f"customer-service  answered questions: fact in the answer {share(correct, len(ANSWERED))}, "
        f"cites faq.md {share(cited, len(ANSWERED))}",
        f"                  unanswerable: no citation {share(uncited, len(UNANSWERED))}, "
        f"file_search found nothing {share(found_nothing, len(UNANSWERED))}",
        f"                  'a person, please': handoff_to_human called {share(handed_off, len(HANDOFF))}",
    ]


def summarizer(client: openai.OpenAI, model: str, context_tokens: int) -> list[str]:
    assistant = client.beta.assistants.create(**PRESETS["summarizer"].assistant_body(model))
    valid = 0
    for _ in range(3):
        run, message = ask(client, assistant.id, FAQ.read_text(), **summary_run_options("key-points"))
        try:
            jsonschema.validate(json.loads(message.content[0].text.value), KEY_POINTS_FORMAT["json_schema"]["schema"])
            valid += 1
        except (ValueError, jsonschema.ValidationError, AttributeError):
            pass
    faq = FAQ.read_text()
    long_text = "\n\n".join([faq] * max(2, (3 * context_tokens * 4) // len(faq)))
    started = time.perf_counter()
    run, message = ask(client, assistant.id, long_text, **summary_run_options("paragraph", words=80))
    elapsed = time.perf_counter() - started
    return [
        f"summarizer        key points as JSON valid {share(valid, 3)}",
        f"                  {len(long_text):,} characters (~3x the context): run {run.status} in {elapsed:.0f} s, "
        f"{run.usage.prompt_tokens:,} prompt tokens over all parts",
    ]


def translator(client: openai.OpenAI, model: str) -> list[str]:
    assistant = client.beta.assistants.create(**PRESETS["translator"].assistant_body(model))
    _, message = ask(client, assistant.id, TRANSLATE, extra_body={"response_language": "fr"})
    output = message.content[0].text.value
    kept = ["```sh\nlamp-reset --hard\n```", "{model}", "%s", "{{support_email}}"]
    intact = sum(span in output for span in kept)
    source_lines = [line for line in TRANSLATE.splitlines() if line.strip() and not line.startswith(("```", "lamp"))]
    output_lines = set(output.splitlines())
    changed = sum(line not in output_lines for line in source_lines)
    return [
        f"translator (fr)   code and placeholders intact {share(intact, len(kept))}, "
        f"prose lines changed by the model {share(changed, len(source_lines))}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model id of the server's models file")
    parser.add_argument("--context-tokens", type=int, default=8192, help="the model's context (sizes the long text)")
    arguments = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks the Assistants API deprecated
    with running_server() as server:
        client = openai.OpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1", max_retries=0, timeout=600)
        lines = customer_service(client, arguments.model)
        lines += summarizer(client, arguments.model, arguments.context_tokens)
        lines += translator(client, arguments.model)
    print(f"\nassistd apps benchmark, model {arguments.model} (temperature 0)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    exit_with(main)
