"""Translate a file, streaming the translation; code blocks and placeholders come through unchanged.

The target language is the run's `response_language`, an assistd extension field (sent with `extra_body`).
An assistant whose metadata says `assistd_app: translator` guards code, markdown and placeholders.
"""

import os
import sys

from openai import OpenAI

path, language = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "fr"
client = OpenAI()
assistant = client.beta.assistants.create(
    model=os.environ.get("MODEL", "smollm2-135m-instruct"),
    instructions="You translate the text the user gives you. Write only the translation.",
    metadata={"assistd_app": "translator"},
    temperature=0,
)
with open(path, encoding="utf-8") as source:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": source.read()}])
with client.beta.threads.runs.stream(
    thread_id=thread.id, assistant_id=assistant.id, extra_body={"response_language": language}
) as stream:
    for text in stream.text_deltas:
        print(text, end="", flush=True)
print()
