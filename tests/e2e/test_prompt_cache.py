"""The local engine's prompt cache, seen through the official SDK: a prompt that repeats an earlier one's
beginning reports those tokens as `usage.prompt_tokens_details.cached_tokens`, on chat completions and on the
second run of a thread (whose prompt starts with the first run's)."""

from __future__ import annotations

from tests.e2e.test_models import CHAT_MODEL

POLICY = (
    "You are the help desk of a bookshop. Orders ship within two working days. Returns are accepted within thirty "
    "days with the receipt. Gift cards never expire. The shop opens at nine and closes at six, Monday to Saturday."
)


def _cached(usage: object) -> int:
    """The cached prompt tokens of a run's usage (a field the SDK's run model does not name)."""
    details = (getattr(usage, "model_extra", None) or {}).get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens", 0))


def test_a_repeated_chat_prompt_reports_cached_tokens(client) -> None:
    messages = [{"role": "system", "content": POLICY}, {"role": "user", "content": "When do you open?"}]
    first = client.chat.completions.create(model=CHAT_MODEL, messages=messages, max_tokens=8, temperature=0)
    again = client.chat.completions.create(model=CHAT_MODEL, messages=messages, max_tokens=8, temperature=0)
    assert again.usage.prompt_tokens == first.usage.prompt_tokens
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens // 2 <= cached < first.usage.prompt_tokens  # the last tokens are evaluated
    assert again.choices[0].message.content == first.choices[0].message.content


def test_the_second_run_of_a_thread_reuses_the_first_run_s_prompt(client) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions=POLICY, temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "How long do returns take?"}])
    first = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=16
    )
    assert first.status in ("completed", "incomplete"), first.last_error
    client.beta.threads.messages.create(thread.id, role="user", content="And do gift cards expire?")
    second = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=16
    )
    assert second.status in ("completed", "incomplete"), second.last_error
    cached = _cached(second.usage)
    assert first.usage.prompt_tokens * 3 // 4 <= cached < second.usage.prompt_tokens
    steps = client.beta.threads.runs.steps.list(run_id=second.id, thread_id=thread.id).data
    assert _cached(steps[0].usage) == cached
