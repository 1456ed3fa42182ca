"""Stream a run with an AssistantEventHandler: text as it is generated, and the run's events."""

import os

from openai import AssistantEventHandler, OpenAI


class Printer(AssistantEventHandler):
    def on_run_step_created(self, run_step) -> None:
        print(f"[step {run_step.type}]", flush=True)

    def on_text_delta(self, delta, snapshot) -> None:
        print(delta.value, end="", flush=True)

    def on_end(self) -> None:
        print(f"\n[run {self.current_run.status}]")


client = OpenAI()
assistant = client.beta.assistants.create(
    model=os.environ.get("MODEL", "smollm2-135m-instruct"), instructions="Answer in one sentence."
)
thread = client.beta.threads.create(messages=[{"role": "user", "content": "Why is the sky blue?"}])
with client.beta.threads.runs.stream(
    thread_id=thread.id, assistant_id=assistant.id, event_handler=Printer(), max_completion_tokens=120
) as s:
    s.until_done()
