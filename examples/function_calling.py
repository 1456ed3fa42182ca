"""A function-calling loop: the run asks for tool outputs (requires_action), we compute and submit them."""

import json
import os

from openai import OpenAI

WEATHER = {"paris": "18 °C, light rain", "madrid": "27 °C, sunny"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]

client = OpenAI()
assistant = client.beta.assistants.create(
    model=os.environ.get("MODEL", "smollm2-135m-instruct"), instructions="Use the tools to answer.", tools=TOOLS
)
thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the weather in Paris?"}])
run = client.beta.threads.runs.create_and_poll(
    thread_id=thread.id,
    assistant_id=assistant.id,
    tool_choice={"type": "function", "function": {"name": "get_weather"}},  # small models: make sure it calls
    parallel_tool_calls=False,  # once: a small model may repeat the call in an array until the bound cuts it off
    max_completion_tokens=200,  # and bound the answer: they tend to ramble on
)
rounds = 0
while run.status == "requires_action":
    if rounds == 5:  # a small model may keep calling the tool instead of answering: stop it
        run = client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
        print("no answer after 5 rounds of tool calls; run cancelled")
        break
    rounds += 1
    outputs = []
    for call in run.required_action.submit_tool_outputs.tool_calls:
        city = json.loads(call.function.arguments).get("city", "")
        print(f"model called {call.function.name}({city!r})")
        outputs.append({"tool_call_id": call.id, "output": WEATHER.get(city.strip().lower(), "unknown city")})
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(  # then the model answers from the outputs
        run_id=run.id, thread_id=thread.id, tool_outputs=outputs
    )
else:
    print(run.status, "-", client.beta.threads.messages.list(thread.id).data[0].content[0].text.value)
