"""Chat messages → what a local model's chat template can render, and the tool-calling protocol.

Local models see tools through a system message that lists them and the one reply shape for a call:
a JSON object `{"name": ..., "arguments": {...}}`. A grammar (grammar.py) holds the model to that shape, so
a call always parses; earlier calls and tool results are rendered back into the conversation in the same
terms. Every template gets plain `role`/`content` strings, whatever the request sent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

TOOL_INSTRUCTIONS = (
    "You can call these functions:\n{functions}\n"
    'To call a function, reply with only a JSON object: {{"name": <function name>, "arguments": <arguments object>}}.'
)
TOOL_PARALLEL = " To call several functions at once, reply with a JSON array of such objects."
TOOL_REQUIRED = " You must call one of the functions now."
TOOL_OPTIONAL = " If no function is needed, answer in plain text."


def content_text(content: Any) -> str:
    """A message's content (None, a string, or a list of parts) as text; non-text parts are left out."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
            texts.append(str(part.get("text", "")))
        elif isinstance(part, dict) and part.get("type") == "refusal":
            texts.append(str(part.get("refusal", "")))
    return "\n".join(texts)


def function_specs(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The function definitions of OpenAI `tools` entries."""
    return [tool["function"] for tool in tools if tool.get("type") == "function"]


def render_call(name: str, arguments: str | dict[str, Any]) -> str:
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments or "{}")
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def template_messages(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] = (),
    tool_choice: Any = None,
    parallel_tool_calls: bool = False,
) -> list[dict[str, str]]:
    """Messages as plain role/content strings, with tool definitions folded into the system message."""
    names_by_call_id: dict[str, str] = {}
    rendered: list[dict[str, str]] = []
    for message in messages:
        role = message.get("role", "user")
        text = content_text(message.get("content"))
        if role == "developer":
            role = "system"
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function", {})
                names_by_call_id[call.get("id", "")] = function.get("name", "")
                calls.append(render_call(function.get("name", ""), function.get("arguments", "{}")))
            text = "\n".join(filter(None, [text, *calls]))
        elif role == "tool":
            name = names_by_call_id.get(message.get("tool_call_id", ""), "the function")
            text = f"Result of {name}: {text}"
        rendered.append({"role": role, "content": text})

    functions = function_specs(tools)
    if functions and tool_choice != "none":
        instructions = TOOL_INSTRUCTIONS.format(functions=json.dumps(functions, ensure_ascii=False, indent=1))
        instructions += TOOL_PARALLEL if parallel_tool_calls else ""
        instructions += TOOL_OPTIONAL if tool_choice in (None, "auto") else TOOL_REQUIRED
        if rendered and rendered[0]["role"] == "system":
            rendered[0] = {"role": "system", "content": rendered[0]["content"] + "\n\n" + instructions}
        else:
            rendered.insert(0, {"role": "system", "content": instructions})
    return rendered
