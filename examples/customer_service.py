"""A customer-service bot over a small FAQ: a vector store, an assistant with file_search, cited answers."""

import os
import sys
from pathlib import Path

from openai import OpenAI

client = OpenAI()
question = sys.argv[1] if len(sys.argv) > 1 else "How long do I have to return a lamp?"

store = client.vector_stores.create(name="northwind-faq")
with (Path(__file__).parent / "faq.md").open("rb") as faq:
    client.vector_stores.file_batches.upload_and_poll(store.id, files=[faq])

assistant = client.beta.assistants.create(
    model=os.environ.get("MODEL", "smollm2-135m-instruct"),
    name="Northwind support",
    instructions=(
        "You are a customer-service assistant. Answer only from the excerpts of the knowledge base, briefly. "
        "If they do not answer the question, say that the knowledge base has no answer."
    ),
    tools=[{"type": "file_search"}],
    tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    temperature=0,
)
thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])
# a bound on the answer: small models tend to ramble on past it
run = client.beta.threads.runs.create_and_poll(
    thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256
)
text = client.beta.threads.messages.list(thread.id).data[0].content[0].text
print(text.value)
for annotation in text.annotations:
    if annotation.type == "file_citation":
        cited = client.files.retrieve(annotation.file_citation.file_id)
        print(f"  {annotation.text} {cited.filename}: {getattr(annotation.file_citation, 'quote', '')}")
