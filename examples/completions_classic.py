"""The classic completions call, as code written for the old API makes it."""

import os

from openai import OpenAI

client = OpenAI()  # reads OPENAI_BASE_URL and OPENAI_API_KEY
completion = client.completions.create(
    model=os.environ.get("MODEL", "smollm2-135m-instruct"),
    prompt="The three primary colours are",
    max_tokens=24,
    temperature=0,
)
print(completion.choices[0].text.strip())
print(f"({completion.usage.total_tokens} tokens)")
