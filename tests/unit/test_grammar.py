"""Grammars: what generation_grammar asks of the model, and prompts for local templates."""

from __future__ import annotations

import pytest
from llama_cpp import LlamaGrammar

from assistd.engines.grammar import call_schema, generation_grammar
from assistd.engines.prompting import template_messages
from assistd.errors import InvalidRequest

TOOLS = [
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "b"}},
]


def compiles(grammar: str) -> bool:
    return LlamaGrammar.from_string(grammar, verbose=False) is not None


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("choice", ["auto", None, "required", {"type": "function", "function": {"name": "b"}}])
def test_tool_grammars_compile_and_say_whether_a_call_may_come(choice, parallel) -> None:
    grammar, may_call = generation_grammar(
        tools=TOOLS, tool_choice=choice, response_format=None, parallel_tool_calls=parallel
    )
    assert may_call and compiles(grammar)
    assert ("assistd-text" in grammar) == (choice in ("auto", None))
    assert ('"[" space assistd-call' in grammar) == parallel


def test_no_grammar_without_constraints() -> None:
    assert generation_grammar(tools=TOOLS, tool_choice="none", response_format=None) == (None, False)
    assert generation_grammar(tools=(), tool_choice=None, response_format={"type": "text"}) == (None, False)


def test_json_grammars_forbid_raw_control_characters_in_strings() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    for response_format in ({"type": "json_object"}, schema):
        grammar, may_call = generation_grammar(tools=(), tool_choice=None, response_format=response_format)
        assert not may_call and compiles(grammar)
        assert "\\x00-\\x1F" in grammar


def test_named_function_must_exist() -> None:
    with pytest.raises(InvalidRequest) as info:
        generation_grammar(
            tools=TOOLS, tool_choice={"type": "function", "function": {"name": "zz"}}, response_format=None
        )
    assert info.value.param == "tool_choice"


def test_free_strings_and_arrays_in_arguments_are_bounded() -> None:
    parameters = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}},
            "steps": {"type": "array", "items": {"type": "integer"}, "minItems": 20},
        },
    }
    arguments = call_schema([{"name": "f", "parameters": parameters}])["properties"]["arguments"]
    assert arguments["properties"]["city"]["maxLength"] == 200
    assert "maxLength" not in arguments["properties"]["unit"]
    assert arguments["properties"]["tags"]["items"]["maxLength"] == 5
    assert arguments["properties"]["tags"]["maxItems"] == 16 and arguments["properties"]["steps"]["maxItems"] == 20
    assert "maxLength" not in parameters["properties"]["city"], "the caller's schema is not changed"


def test_call_schema_names_each_function() -> None:
    assert call_schema([TOOLS[0]["function"]])["properties"]["name"] == {"const": "a"}
    assert len(call_schema([t["function"] for t in TOOLS])["oneOf"]) == 2


def test_template_messages_fold_tools_and_results() -> None:
    messages = template_messages(
        [
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        TOOLS,
        "required",
    )
    assert messages[0]["role"] == "system" and "Be kind." in messages[0]["content"]
    assert '"name": "a"' in messages[0]["content"] and "must call" in messages[0]["content"]
    assert messages[1] == {"role": "user", "content": "hi"}
    assert messages[2] == {"role": "assistant", "content": '{"name": "a", "arguments": {}}'}
    assert messages[3] == {"role": "tool", "content": "Result of a: 42"}
