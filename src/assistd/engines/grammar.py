"""Constrained decoding: GBNF grammars that make a local model's output valid by construction.

- `json_object`: any JSON object; `json_schema`: a JSON value matching the schema.
- tools with `tool_choice` "required" or a named function: exactly one call `{"name", "arguments"}` of a
  declared function, its arguments matching that function's parameter schema.
- tools with "auto": either such a call or plain text that does not start with "{" or "[" — the choice is the
  model's, a malformed call is impossible.
- with `parallel_tool_calls`, a JSON array of up to MAX_PARALLEL_CALLS such calls is allowed too.
- string arguments the function's schema leaves unbounded are capped at MAX_ARGUMENT_STRING characters, and
  arrays at MAX_ARGUMENT_ITEMS items.

Schemas are turned into grammars by json_schema.py (references, type lists, numeric bounds, refusals).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from assistd.engines.base import SchemaBounds
from assistd.engines.json_schema import schema_to_grammar
from assistd.engines.prompting import function_specs
from assistd.errors import InvalidRequest

ANY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
MAX_ARGUMENT_STRING = 200
MAX_ARGUMENT_ITEMS = 16
PERMISSIVE_PARAMETERS: dict[str, Any] = {"type": "object"}
_PLAIN_TEXT_RULE = "assistd-text ::= [^{[ \\t\\n] [^\\x00]*\n"
MAX_PARALLEL_CALLS = 4


def _parallel_calls_rule(limit: int) -> str:
    """One call, or a JSON array of 1..limit calls (nested optionals: the grammar has no bounded repeat)."""
    more = ""
    for _ in range(limit - 1):
        more = f'("," space assistd-call {more})?'
    return f'assistd-calls ::= assistd-call | "[" space assistd-call {more} "]" space\n'


_PARALLEL_CALLS_RULE = _parallel_calls_rule(MAX_PARALLEL_CALLS)


# The converter lets raw control characters into strings, which JSON forbids (json.loads rejects them).
_LOOSE_CHAR = 'char ::= [^"\\\\]'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'


def _strict(grammar: str) -> str:
    return grammar.replace(_LOOSE_CHAR, _STRICT_CHAR)


def schema_grammar(
    schema: dict[str, Any], param: str = "response_format", bounds: SchemaBounds = SchemaBounds()
) -> str:
    """A grammar for values matching `schema`; a schema that cannot be enforced is a 400 on `param`."""
    return _strict(schema_to_grammar({"value": schema}, lambda prepared: prepared["value"], param, bounds))


def calls_grammar(functions: Sequence[dict[str, Any]], bounds: SchemaBounds = SchemaBounds()) -> str:
    """A grammar (root rule `assistd-call`) for one call `{"name", "arguments"}` of any of `functions`."""
    parameters = {
        function["name"]: bounded_arguments(function.get("parameters") or PERMISSIVE_PARAMETERS)
        for function in functions
    }
    grammar = schema_to_grammar(parameters, lambda prepared: call_schema(functions, prepared), "tools", bounds)
    return _rename_root(_strict(grammar), "assistd-call").rstrip("\n") + "\n"


def bounded_arguments(schema: Any) -> Any:
    """`schema` with every free-form string capped at MAX_ARGUMENT_STRING characters and every unbounded array at
    MAX_ARGUMENT_ITEMS items: small models can ramble inside a string, or repeat array items, until the context
    runs out and the call is cut off. What the schema already bounds is left alone."""
    if isinstance(schema, list):
        return [bounded_arguments(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: bounded_arguments(value) for key, value in schema.items()}
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "string" in kinds and not {"maxLength", "enum", "const", "pattern", "format"} & schema.keys():
        bounded["maxLength"] = MAX_ARGUMENT_STRING
    if "array" in kinds and "maxItems" not in schema and isinstance(schema.get("items"), dict):
        bounded["maxItems"] = max(MAX_ARGUMENT_ITEMS, schema.get("minItems", 0))
    return bounded


def call_schema(functions: Sequence[dict[str, Any]], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON schema of one call of any of `functions` (their `parameters`, as prepared, by function name)."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": function["name"]},
                "arguments": (parameters or {}).get(function["name"])
                or bounded_arguments(function.get("parameters") or PERMISSIVE_PARAMETERS),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for function in functions
    ]
    return options[0] if len(options) == 1 else {"oneOf": options}


def chosen_functions(tools: Sequence[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    """The functions a call may name under `tool_choice`."""
    functions = function_specs(tools)
    if isinstance(tool_choice, dict):
        name = tool_choice.get("function", {}).get("name")
        functions = [function for function in functions if function["name"] == name]
        if not functions:
            raise InvalidRequest(f"tool_choice names '{name}', which is not among the tools.", param="tool_choice")
    return functions


def _rename_root(grammar: str, name: str) -> str:
    return re.sub(r"^root ::=", f"{name} ::=", grammar, count=1, flags=re.MULTILINE)


def generation_grammar(
    *,
    tools: Sequence[dict[str, Any]],
    tool_choice: Any,
    response_format: dict[str, Any] | None,
    parallel_tool_calls: bool = False,
    bounds: SchemaBounds = SchemaBounds(),
) -> tuple[str | None, bool]:
    """The grammar for one generation, and whether its output may be a tool call (or, with
    `parallel_tool_calls`, a JSON array of calls); schemas past `bounds` are a 400."""
    functions = chosen_functions(tools, tool_choice) if tools and tool_choice != "none" else []
    if functions:
        call_rules = calls_grammar(functions, bounds)
        calls = "assistd-calls" if parallel_tool_calls else "assistd-call"
        if parallel_tool_calls:
            call_rules += _PARALLEL_CALLS_RULE
        if tool_choice in (None, "auto"):
            return f"root ::= {calls} | assistd-text\n" + call_rules + _PLAIN_TEXT_RULE, True
        return f"root ::= {calls}\n" + call_rules, True
    response_format = response_format or {}
    kind = response_format.get("type")
    if kind == "json_object":
        return schema_grammar(ANY_OBJECT_SCHEMA, bounds=bounds), False
    if kind == "json_schema":
        schema = response_format["json_schema"].get("schema") or ANY_OBJECT_SCHEMA
        return schema_grammar(schema, bounds=bounds), False
    return None, False
