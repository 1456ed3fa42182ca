"""Function tools in runs: what the model may call in each round, and when two calls are the same call.

- A forced `tool_choice` (`required`, or a named function) holds for the run's first round of calls; with their
  outputs the model answers in text. A hosted tool forced (file_search, code_interpreter) leaves the choice to
  the model: file_search runs before generation, code_interpreter is not served.
- After `max_rounds` rounds of calls the model must answer in text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from assistd.engines.base import Usage
from assistd.engines.prompting import content_text
from assistd.protocol import wire
from assistd.store import tables
from assistd.tools.base import Recorder, Tool


def function_calls(step: tables.RunStep) -> list[dict[str, Any]]:
    """The function calls of a tool_calls step (none for other steps, or for file_search calls)."""
    if step.type != "tool_calls":
        return []
    return [call for call in step.step_details.get("tool_calls", []) if call["type"] == "function"]


def call_key(call: dict[str, Any]) -> tuple[str, str]:
    """What makes two function calls the same call: the function and its arguments (as JSON values)."""
    arguments = call["function"]["arguments"]
    try:
        arguments = json.dumps(json.loads(arguments), sort_keys=True)
    except ValueError:
        arguments = arguments.strip()
    return call["function"]["name"], arguments


def offer(run: tables.Run, rounds: int, max_rounds: int) -> dict[str, Any]:
    """The function tools and the tool choice of the generation request for `run` after `rounds` rounds of calls."""
    functions = [tool for tool in run.tools if tool.get("type") == "function"]
    tool_choice = run.tool_choice
    if isinstance(tool_choice, dict) and tool_choice.get("type") != "function":
        tool_choice = "auto"
    forced = tool_choice == "required" or isinstance(tool_choice, dict)
    if (forced and rounds) or rounds >= max_rounds:
        tool_choice = "none"  # the forced call was made, or enough rounds: the model answers with the outputs
    return {
        "tools": functions,
        "tool_choice": tool_choice if functions else None,
        "parallel_tool_calls": run.parallel_tool_calls,
    }


def constraints(run: tables.Run, rounds: int, max_rounds: int) -> dict[str, Any]:
    """The tool and format fields of the generation request for `run` after `rounds` rounds of calls."""
    response_format = run.response_format if run.response_format not in (None, "auto") else None
    return {**offer(run, rounds, max_rounds), "response_format": response_format}


class FunctionTool(Tool):
    """Functions the client runs: the model's calls make the run require action; their outputs come back with
    submit_tool_outputs and go into the next round's prompt."""

    type: ClassVar[str] = "function"

    def history(self, step: tables.RunStep) -> list[dict[str, Any]]:
        calls = function_calls(step)
        if not calls:
            return []
        asked = {"role": "assistant", "content": None, "tool_calls": [wire.function_call(c) for c in calls]}
        answers = [
            {"role": "tool", "tool_call_id": c["id"], "content": content_text(c["function"]["output"])} for c in calls
        ]
        return [asked, *answers]

    def declare(self, run: tables.Run, rounds: int, max_rounds: int) -> dict[str, Any]:
        return offer(run, rounds, max_rounds)

    async def take_calls(
        self,
        run: tables.Run,
        calls: list[dict[str, Any]],
        usage: Usage,
        steps: Sequence[tables.RunStep],
        recorder: Recorder,
    ) -> bool:
        """Hand the client the calls it has not answered yet; identical calls with outputs are not asked again."""
        seen = {call_key(call) for step in steps for call in function_calls(step)}
        fresh = []
        for call in calls:
            if call["type"] == self.type and (key := call_key(call)) not in seen:
                seen.add(key)
                fresh.append({**call, "function": {**call["function"], "output": None}})
        if not fresh:
            return False
        await recorder.require_action(run, fresh, usage)
        return True
