"""Summarise a file: paragraph, bullets, tldr, or key points as JSON (json_schema response format).

An assistant whose metadata says `assistd_app: summarizer` (what `assistd apps install summarizer` makes) also
summarises texts longer than the model's context, part by part, instead of failing on them.
"""

import json
import os
import sys

from openai import OpenAI

STYLES = {
    "paragraph": "Write the summary as one paragraph.",
    "bullets": "Write the summary as a bulleted list of the main points, one line each, starting with '- '.",
    "tldr": "Write the summary as a single sentence that starts with 'TL;DR:'.",
    "key-points": "Give the key points of the text and a one-sentence summary, as JSON.",
}
KEY_POINTS = {
    "type": "json_schema",
    "json_schema": {
        "name": "key_points",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}, "key_points": {"type": "array", "items": {"type": "string"}}},
            "required": ["summary", "key_points"],
            "additionalProperties": False,
        },
    },
}

path, style = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "paragraph"
client = OpenAI()
assistant = client.beta.assistants.create(
    model=os.environ.get("MODEL", "smollm2-135m-instruct"),
    instructions="You summarise the text the user gives you. Keep to what the text says.",
    metadata={"assistd_app": "summarizer"},
    temperature=0,
)
with open(path, encoding="utf-8") as source:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": source.read()}])
run = client.beta.threads.runs.create_and_poll(
    thread_id=thread.id,
    assistant_id=assistant.id,
    additional_instructions=STYLES[style],
    response_format=KEY_POINTS if style == "key-points" else None,
    max_completion_tokens=1200 if style == "key-points" else 400,  # small models tend to ramble on
)
summary = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
print(json.dumps(json.loads(summary), indent=2) if style == "key-points" else summary)
