"""Hostile input on every create/modify route (issue 13): strings, numbers, wrong types, JSON bodies, maps,
arrays, JSON-schema bombs, path segments, file names and files, sent with the official SDK and with raw httpx.

Every answer is a 4xx in OpenAI's error shape, or a 2xx where the input is legitimately acceptable (an emoji);
never a 5xx, never a hang (every request has a bounded timeout). Unpaired surrogates and NUL are a 400 naming the
parameter; a body over the limit is a 413. The server's memory stays bounded (its RSS, read from /proc, before and
after), and every list of the project still answers 200 afterwards.

The routes come from the app itself: a POST route this file does not know fails `test_every_write_route_is_covered`.
The suite works in a project of its own on the session's server, so what it leaves behind stays out of the other
tests' way. Model calls are kept few and small (one token, runs stopped by `max_prompt_tokens`)."""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from assistd.app import create_app
from tests.conformance import ConformanceTransport
from tests.conftest import MAX_UPLOAD_BYTES, Env, assert_error_shape
from tests.e2e.test_models import CHAT_MODEL, EMBEDDING_MODEL
from tests.server import run_cli

MB = 1024 * 1024
BODY_LIMIT = MB  # the session server's max_body_bytes (tests/conftest.py)
TIMEOUT = httpx.Timeout(60, connect=10)  # a hang fails the case, it does not hold the suite
MAX_RSS_GROWTH_MB = 300
TERMINAL = {"completed", "incomplete", "failed", "cancelled", "expired"}


# ---------------------------------------------------------------------------------------------------------------
# Hostile values


@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as is (what Python's json cannot write: 5,000 digits, 1e309)."""

    text: str


@dataclass(frozen=True)
class Value:
    value: Any
    expect: int | None = None  # the one status it must get; None: any 2xx or 4xx
    sure_refusal: bool = False  # refused wherever it goes: cheap to send to every slot, even on model routes


def _refused(value: Any) -> Value:
    return Value(value, 400, sure_refusal=True)


STRINGS: dict[str, Value] = {
    "lone_high_surrogate": _refused("a\ud800b"),
    "lone_low_surrogate": _refused("\udfff"),
    "reversed_surrogates": _refused("\udc00\ud800"),
    "nul": _refused("a\x00b"),
    "nul_only": _refused("\x00"),
    "over_body_limit": Value("y" * (2 * MB), 413, sure_refusal=True),
    "c0_controls": Value("".join(map(chr, range(1, 32))) + "\x7f"),
    "rtl_override": Value("\u202egnp.exe\u202c \u2066isolate\u2069 \u200f"),
    "combining_marks": Value("Z" + "\u0336\u0337\u0338\u0301" * 16),
    "emoji": Value("👩‍👩‍👧‍👦 🏳️‍🌈 🇺🇳 👍🏽"),
    "noncharacters": Value("\ufeff\ufffe\uffff\U0010ffff\U0001fffe"),
    "private_use": Value("\ue000\U000f0000\U0010fffd"),
    "zero_width": Value("\u200b\u200c\u200d\u2060"),
    "line_separators": Value("a\u2028b\u2029c\x85d\r\n"),
    "format_strings": Value("%s%n%x {0} {{}} ${jndi:ldap://x} {{7*7}} \\u0000"),
    "injection": Value("'; DROP TABLE assistants; -- <script>alert(1)</script> ../../etc/passwd"),
    "empty": Value(""),
    "huge": Value("x" * (BODY_LIMIT - 48 * 1024)),  # within the body limit: the field's own limit must hold
    "huge_multibyte": Value("€" * 300_000),  # 900 KB of UTF-8
    "long_word": Value("w" * 70_000),
}

NUMBERS: dict[str, Value] = {
    "zero": Value(0),
    "negative": Value(-1),
    "minus_zero": Value(-0.0),
    "subnormal": Value(5e-324),
    "fraction": Value(0.5),
    "int64_max": Value(2**63 - 1),
    "int64_over": Value(2**63),
    "int64_under": Value(-(2**63) - 1),
    "beyond_64_bits": Value(2**64 + 1),
    "huge_int": Value(10**30),
    "digits_5000": Value(Raw("9" * 5000), 400),
    "e308": Value(1e308),
    "neg_e308": Value(-1e308),
    "e309": Value(Raw("1e309")),
    "nan": Value(float("nan"), 400),
    "infinity": Value(float("inf"), 400),
    "neg_infinity": Value(float("-inf"), 400),
    "numeric_string": Value("1"),
    "bool": Value(True),
}

TYPES: dict[str, Value] = {
    "null": Value(None),
    "true": Value(True),
    "int": Value(12),
    "string": Value("twelve"),
    "empty_list": Value([]),
    "empty_object": Value({}),
    "nested_lists": Value([[["x"]]]),
    "object": Value({"$ref": "#", "type": "string"}),
}

MAPS: dict[str, Value] = {
    "17_pairs": Value({f"k{i}": "v" for i in range(17)}, 400),
    "10k_pairs": Value({f"k{i}": "v" for i in range(10_000)}, 400),
    "key_65": Value({"k" * 65: "v"}, 400),
    "key_empty": Value({"": "v"}),
    "value_513": Value({"k": "v" * 513}, 400),
    "value_object": Value({"k": {"nested": ["x"]}}, 400),
    "value_list": Value({"k": ["a", "b"]}, 400),
    "value_null": Value({"k": None}),
    "value_number": Value({"k": 1e308}),
    "value_nan": Value({"k": float("nan")}, 400),
    "value_bool": Value({"k": True}),
    "key_nul": Value({"a\x00b": "v"}, 400),
    "key_surrogate": Value({"\ud800": "v"}, 400),
    "list": Value([["k", "v"]], 400),
    "string": Value("k=v", 400),
}
LISTS: dict[str, Value] = {  # every list of the API is bounded far below these, or its items are objects
    "5k_ints": Value([0] * 5_000),
    "5k_strings": Value(["a"] * 5_000),
    "nested_lists": Value(json.loads("[" * 150 + "]" * 150)),
}

# what the SDK can send (its JSON is UTF-8 without NaN): a sample of each family
SDK_STRINGS = ("emoji", "combining_marks", "nul", "huge", "over_body_limit")
SDK_NUMBERS = ("zero", "negative", "beyond_64_bits", "e308", "int64_max", "numeric_string")
SDK_TYPES = ("int", "empty_object", "nested_lists")
CORE_STRINGS = ("lone_low_surrogate", "nul", "emoji", "rtl_override", "long_word")
CORE_NUMBERS = ("zero", "negative", "int64_over", "beyond_64_bits", "e309", "nan", "numeric_string")
# where an accepted value costs a model call, the extreme numbers only (ordinary ones are the other tests' own)
MODEL_NUMBERS = (
    "negative",
    "subnormal",
    "int64_max",
    "int64_over",
    "int64_under",
    "beyond_64_bits",
    "digits_5000",
    "e308",
    "neg_e308",
    "e309",
    "nan",
    "infinity",
    "neg_infinity",
)


def nested_objects(depth: int, leaf: Any = "x") -> Any:
    for _ in range(depth):
        leaf = {"a": leaf}
    return leaf


def nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"], "additionalProperties": False}
    return schema


def billion_laughs(levels: int = 12, fan: int = 10) -> dict[str, Any]:
    """Each definition refers to the one below it `fan` times: expanded, fan**levels strings."""
    defs: dict[str, Any] = {"l0": {"type": "string"}}
    for level in range(1, levels):
        names = [f"p{i}" for i in range(fan)]
        defs[f"l{level}"] = {
            "type": "object",
            "properties": {name: {"$ref": f"#/$defs/l{level - 1}"} for name in names},
            "required": names,
            "additionalProperties": False,
        }
    return {"$defs": defs, "$ref": f"#/$defs/l{levels - 1}"}


SCHEMAS: dict[str, Any] = {
    "min_length_1e9": {"type": "string", "minLength": 10**9},
    "max_length_1e9": {"type": "string", "maxLength": 10**9},
    "min_items_1e9": {"type": "array", "items": {"type": "string"}, "minItems": 10**9},
    "min_length_beyond_64_bits": {"type": "string", "minLength": 2**64},
    "min_length_negative": {"type": "string", "minLength": -1},
    "min_length_float": {"type": "string", "minLength": 1e308},
    "nesting_400": nested_schema(400),
    "nesting_100": nested_schema(100),
    "enum_20k": {"type": "string", "enum": [f"v{i}" for i in range(20_000)]},
    "enum_long_values": {"type": "string", "enum": ["x" * 500 + str(i) for i in range(1000)]},
    "any_of_5000": {"anyOf": [{"type": "string", "const": f"c{i}"} for i in range(5000)]},
    "properties_5000": {
        "type": "object",
        "properties": {f"p{i}": {"type": "string"} for i in range(5000)},
        "required": [f"p{i}" for i in range(5000)],
    },
    "prefix_items_5000": {"type": "array", "prefixItems": [{"type": "integer"}] * 5000},
    "billion_laughs": billion_laughs(),
    "ref_to_itself": {"$ref": "#"},
    "ref_missing": {"$ref": "#/$defs/nowhere"},
    "ref_remote": {"$ref": "http://169.254.169.254/latest/meta-data"},
    "pattern_repeats": {"type": "string", "pattern": "^(a{1000}){1000}$"},
    "pattern_catastrophic": {"type": "string", "pattern": "^((a+)+)+$"},
    "integer_range_huge": {"type": "integer", "minimum": -(10**18), "maximum": 10**18},
    "number_range_extreme": {"type": "number", "minimum": -1e308, "maximum": 1e308},
    "not_an_object": "string",
    "a_list": [1, 2],
}

# Bodies as bytes, whatever the route; `{base}` stands for the route's valid body.
BIG_ARRAY = ("[" + ",".join(["0"] * 200_000) + "]").encode()
BODIES: dict[str, Callable[[dict[str, Any]], tuple[bytes, dict[str, str]]]] = {
    "nested_arrays_10k": lambda base: (b"[" * 10_000 + b"]" * 10_000, {}),
    "nested_objects_10k": lambda base: (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, {}),
    "nested_in_body_900": lambda base: (_json({**base, "metadata": nested_objects(900)}), {}),
    "nested_in_body_300": lambda base: (_json({**base, "metadata": nested_objects(300)}), {}),
    "digits_5000": lambda base: (_json(base)[:-1] + b',"n":' + b"9" * 5000 + b"}", {}),
    "huge_array": lambda base: (BIG_ARRAY, {}),
    "huge_array_in_body": lambda base: (_json(base)[:-1] + b',"x":' + BIG_ARRAY + b"}", {}),
    "many_keys": lambda base: (_json({f"k{i}": i for i in range(5_000)}), {}),
    "null": lambda base: (b"null", {}),
    "list": lambda base: (b"[]", {}),
    "string": lambda base: (b'"body"', {}),
    "number": lambda base: (b"1e999", {}),
    "invalid_utf8": lambda base: (b'{"x": "\xff\xfe\xfd"}', {}),
    "overlong_utf8": lambda base: (b'{"x": "\xc0\xaf\xe0\x80\xaf"}', {}),
    "utf8_encoded_surrogate": lambda base: (b'{"x": "\xed\xa0\x80"}', {}),
    "utf16": lambda base: (json.dumps(base).encode("utf-16"), {}),
    "utf32": lambda base: (json.dumps(base).encode("utf-32"), {}),
    "truncated": lambda base: (_json(base)[:-2], {}),
    "trailing_garbage": lambda base: (_json(base) + b"}}]]\x00", {}),
    "empty": lambda base: (b"", {}),
    "whitespace": lambda base: (b" \r\n\t ", {}),
    "duplicate_keys": lambda base: (_json(base)[:-1] + b',"metadata":{"k":"v"},"metadata":{"k":"w"}}', {}),
    "over_body_limit": lambda base: (b'{"x":"' + b"y" * (2 * MB) + b'"}', {}),
    "text_plain": lambda base: (_json(base), {"content-type": "text/plain"}),
    "form_urlencoded": lambda base: (b"model=m&x=%00", {"content-type": "application/x-www-form-urlencoded"}),
    "multipart": lambda base: (b"--b\r\n\r\n--b--", {"content-type": "multipart/form-data; boundary=b"}),
    "gzip_claimed": lambda base: (_json(base), {"content-encoding": "gzip"}),
    "charset_bogus": lambda base: (_json(base), {"content-type": "application/json; charset=x-bogus"}),
}
BODY_EXPECT = {"over_body_limit": 413}
# Most bodies fail where the body is read, whatever the route: every route gets these, and each API module's
# first route (FULL_BODY_ROUTES) all of them.
CORE_BODIES = (
    "nested_arrays_10k",
    "nested_in_body_300",
    "digits_5000",
    "null",
    "invalid_utf8",
    "utf16",
    "truncated",
    "duplicate_keys",
    "over_body_limit",
    "text_plain",
)

PATH_SEGMENTS = {
    "nul": "%00",
    "traversal": "..%2F..%2Fetc%2Fpasswd",
    "dot_dot": "..",
    "encoded_surrogate": "%ED%A0%80",
    "invalid_utf8": "%FF%FE",
    "long": "a" * 5000,
    "emoji": "%F0%9F%98%80",
    "sql": "x'%20OR%20'1'='1",
}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json(body: Any) -> bytes:
    """`body` as UTF-8 JSON that says everything: NaN and Infinity as Python writes them, unpaired surrogates as
    JSON escapes (no UTF-8 can hold them), Raw values as their text."""
    raws: list[str] = []

    def default(value: Any) -> str:
        if not isinstance(value, Raw):
            raise TypeError(f"{type(value).__name__} is not JSON")
        raws.append(value.text)
        return f"\x01raw{len(raws) - 1}\x01"

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # schemas nested 400 levels are 800 levels of JSON
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=True, default=default)
    finally:
        sys.setrecursionlimit(limit)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x01raw{index}\x01"), raw)
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text).encode("utf-8")


def sdk_can_send(body: Any) -> bool:
    """The SDK writes UTF-8 JSON without NaN: what it cannot encode never leaves the client."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):
        return False
    finally:
        sys.setrecursionlimit(limit)
    return True


KEY = "<key>"  # a slot's last part: the hostile value is a key of the map, not a value


def put(body: dict[str, Any], slot: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with `value` at `slot` ("messages.0.content", "metadata.<key>")."""
    result = copy.deepcopy(body)
    parts = slot.split(".")
    target: Any = result
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    last = parts[-1]
    if last == KEY:
        if not isinstance(value, str):
            raise TypeError("a JSON key is text")
        target.clear()
        target[value] = "v"
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return result


# ---------------------------------------------------------------------------------------------------------------
# The routes


@dataclass
class Route:
    path: str  # the template filled in
    body: dict[str, Any] | None  # a valid body; None: the route takes none
    sdk: Callable[[openai.OpenAI, dict[str, Any]], Any]
    strings: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    maps: tuple[str, ...] = ()  # metadata / attributes
    lists: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()  # where a JSON schema goes: "response_format", "tools", "parameters"
    calls_model: bool = False  # an accepted body costs a model call: only refusals go to every slot
    skip: tuple[str, ...] = ()  # labels not sent (each says why where it is set)


@dataclass
class Objects:
    """What the routes address, made once for the module in the suite's own project."""

    key: str
    sdk: openai.OpenAI
    raw: httpx.Client
    assistant: str
    tool_assistant: str
    message_thread: str
    message: str
    run_thread: str
    waiting_thread: str
    waiting_run: str
    call_id: str
    vector_store: str
    file: str
    batch: str
    pids: list[int]
    rss_before: int = 0
    threads: set[str] = field(default_factory=set)
    vector_stores: set[str] = field(default_factory=set)
    assistants: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    runs: set[tuple[str, str]] = field(default_factory=set)
    cases: int = 0
    accepted: int = 0
    slowest: tuple[float, str] = (0.0, "")
    rss_steps: list[tuple[int, str]] = field(default_factory=list)  # (growth in MB, test): where memory went
    seconds: Counter[str] = field(default_factory=Counter)  # by hostile value: where the time went


def _route_table(o: Objects) -> dict[str, Route]:
    """Template → route; each template is the app's own (see test_every_write_route_is_covered)."""
    meta = {"metadata": {"k": "v"}}
    user_message = {"role": "user", "content": "hi"}
    noop = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}
    return {
        "/v1/assistants": Route(
            "/v1/assistants",
            {"model": CHAT_MODEL, "tools": [noop], **meta},
            lambda c, b: c.beta.assistants.create(**b),
            strings=("name", "instructions", "description", "model", "metadata.k", f"metadata.{KEY}"),
            numbers=("temperature", "top_p"),
            maps=("metadata",),
            lists=("tools",),
            schemas=("response_format", "tools"),
        ),
        "/v1/assistants/{assistant_id}": Route(
            f"/v1/assistants/{o.assistant}",
            dict(meta),
            lambda c, b: c.beta.assistants.update(o.assistant, **b),
            strings=("name", "instructions", "metadata.k"),
            numbers=("temperature", "top_p"),
            maps=("metadata",),
            lists=("tools",),
            schemas=("response_format", "tools"),
        ),
        "/v1/threads": Route(
            "/v1/threads",
            {"messages": [dict(user_message)], **meta},
            lambda c, b: c.beta.threads.create(**b),
            strings=("messages.0.content", "metadata.k", f"metadata.{KEY}", "messages.0.role"),
            maps=("metadata", "messages.0.metadata"),
            lists=("messages", "tool_resources.code_interpreter.file_ids"),
        ),
        "/v1/threads/{thread_id}": Route(
            f"/v1/threads/{o.message_thread}",
            dict(meta),
            lambda c, b: c.beta.threads.update(o.message_thread, **b),
            strings=("metadata.k", f"metadata.{KEY}"),
            maps=("metadata",),
            lists=("tool_resources.file_search.vector_store_ids",),
        ),
        "/v1/threads/{thread_id}/messages": Route(
            f"/v1/threads/{o.message_thread}/messages",
            {**user_message, **meta},
            lambda c, b: c.beta.threads.messages.create(o.message_thread, **b),
            strings=("content", "metadata.k", "role", "attachments.0.file_id"),
            maps=("metadata",),
            lists=("content", "attachments"),
        ),
        "/v1/threads/{thread_id}/messages/{message_id}": Route(
            f"/v1/threads/{o.message_thread}/messages/{o.message}",
            dict(meta),
            lambda c, b: c.beta.threads.messages.update(o.message, thread_id=o.message_thread, **b),
            strings=("metadata.k", f"metadata.{KEY}"),
            maps=("metadata",),
        ),
        "/v1/threads/{thread_id}/runs": Route(
            f"/v1/threads/{o.run_thread}/runs",
            {"assistant_id": o.assistant, "max_prompt_tokens": 1, "max_completion_tokens": 1, **meta},
            lambda c, b: c.beta.threads.runs.create(o.run_thread, **b),
            strings=("instructions", "additional_instructions", "additional_messages.0.content", "assistant_id"),
            numbers=("temperature", "max_prompt_tokens", "max_completion_tokens", "truncation_strategy.last_messages"),
            maps=("metadata",),
            lists=("additional_messages", "tools"),
            schemas=("response_format", "tools"),
            calls_model=True,
        ),
        "/v1/threads/{thread_id}/runs/{run_id}": Route(
            f"/v1/threads/{o.waiting_thread}/runs/{o.waiting_run}",
            dict(meta),
            lambda c, b: c.beta.threads.runs.update(o.waiting_run, thread_id=o.waiting_thread, **b),
            strings=("metadata.k", f"metadata.{KEY}"),
            maps=("metadata",),
        ),
        "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs": Route(
            f"/v1/threads/{o.waiting_thread}/runs/{o.waiting_run}/submit_tool_outputs",
            {"tool_outputs": [{"tool_call_id": o.call_id, "output": "ok"}]},
            lambda c, b: c.beta.threads.runs.submit_tool_outputs(o.waiting_run, thread_id=o.waiting_thread, **b),
            strings=("tool_outputs.0.output", "tool_outputs.0.tool_call_id"),
            lists=("tool_outputs",),
        ),
        "/v1/threads/{thread_id}/runs/{run_id}/cancel": Route(
            f"/v1/threads/{o.waiting_thread}/runs/{o.waiting_run}/cancel",
            None,
            lambda c, b: c.beta.threads.runs.cancel(o.waiting_run, thread_id=o.waiting_thread),
        ),
        "/v1/threads/runs": Route(
            "/v1/threads/runs",
            {
                "assistant_id": o.assistant,
                "thread": {"messages": [dict(user_message)]},
                "max_prompt_tokens": 1,
                "max_completion_tokens": 1,
            },
            lambda c, b: c.beta.threads.create_and_run(**b),
            strings=("thread.messages.0.content", "instructions", "metadata.k", "model"),
            numbers=("temperature", "top_p", "max_prompt_tokens"),
            maps=("metadata", "thread.metadata"),
            lists=("thread.messages", "tools"),
            schemas=("response_format", "tools"),
            calls_model=True,
        ),
        "/v1/vector_stores": Route(
            "/v1/vector_stores",
            {"name": "v", **meta},
            lambda c, b: c.vector_stores.create(**b),
            strings=("name", "metadata.k", f"metadata.{KEY}", "description"),
            numbers=("expires_after.days", "chunking_strategy.static.max_chunk_size_tokens"),
            maps=("metadata",),
            lists=("file_ids",),
        ),
        "/v1/vector_stores/{vector_store_id}": Route(
            f"/v1/vector_stores/{o.vector_store}",
            {"name": "v", **meta},
            lambda c, b: c.vector_stores.update(o.vector_store, **b),
            strings=("name", "metadata.k"),
            numbers=("expires_after.days",),
            maps=("metadata",),
        ),
        "/v1/vector_stores/{vector_store_id}/search": Route(
            f"/v1/vector_stores/{o.vector_store}/search",
            {"query": "hi", "filters": {"type": "eq", "key": "k", "value": "v"}},
            lambda c, b: c.vector_stores.search(o.vector_store, **b),
            strings=("query", "filters.key", "filters.value", "filters.type"),
            numbers=("max_num_results", "ranking_options.score_threshold", "filters.value"),
            lists=("query", "filters.value"),
            calls_model=True,  # the embedding model: cheap, but each query is embedded
        ),
        "/v1/vector_stores/{vector_store_id}/files": Route(
            f"/v1/vector_stores/{o.vector_store}/files",
            {"file_id": o.file, "attributes": {"k": "v"}},
            lambda c, b: c.vector_stores.files.create(o.vector_store, **b),
            strings=("file_id", "attributes.k", f"attributes.{KEY}"),
            numbers=("attributes.k", "chunking_strategy.static.max_chunk_size_tokens"),
            maps=("attributes",),
        ),
        "/v1/vector_stores/{vector_store_id}/files/{file_id}": Route(
            f"/v1/vector_stores/{o.vector_store}/files/{o.file}",
            {"attributes": {"k": "v"}},
            lambda c, b: c.vector_stores.files.update(o.file, vector_store_id=o.vector_store, **b),
            strings=("attributes.k", f"attributes.{KEY}"),
            numbers=("attributes.k",),
            maps=("attributes",),
        ),
        "/v1/vector_stores/{vector_store_id}/file_batches": Route(
            f"/v1/vector_stores/{o.vector_store}/file_batches",
            {"file_ids": [o.file], "attributes": {"k": "v"}},
            lambda c, b: c.vector_stores.file_batches.create(o.vector_store, **b),
            strings=("file_ids.0", "attributes.k"),
            numbers=("attributes.k", "chunking_strategy.static.chunk_overlap_tokens"),
            maps=("attributes",),
            lists=("file_ids",),
        ),
        "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel": Route(
            f"/v1/vector_stores/{o.vector_store}/file_batches/{o.batch}/cancel",
            None,
            lambda c, b: c.vector_stores.file_batches.cancel(o.batch, vector_store_id=o.vector_store),
        ),
        "/v1/chat/completions": Route(
            "/v1/chat/completions",
            {"model": CHAT_MODEL, "messages": [dict(user_message)], "max_tokens": 1},
            lambda c, b: c.chat.completions.create(**b),
            strings=("messages.0.content", "model", "stop", "user", "messages.0.name", "messages.0.role"),
            numbers=("max_tokens", "temperature", "top_p", "seed", "n", "presence_penalty"),
            maps=("metadata",),
            lists=("messages", "stop", "tools"),
            schemas=("response_format", "tools"),
            calls_model=True,
            # its spec in the prompt is some thousands of tokens: a minute of prompt evaluation on two busy cores
            # (the runs' tools slot builds the same grammar without evaluating a prompt)
            skip=("tools:billion_laughs",),
        ),
        "/v1/completions": Route(
            "/v1/completions",
            {"model": CHAT_MODEL, "prompt": "hi", "max_tokens": 1},
            lambda c, b: c.completions.create(**b),
            strings=("prompt", "model", "stop", "suffix"),
            numbers=("max_tokens", "temperature", "seed", "n"),
            lists=("prompt", "stop"),
            calls_model=True,
        ),
        "/v1/engines/{engine}/completions": Route(
            f"/v1/engines/{CHAT_MODEL}/completions",
            {"prompt": "hi", "max_tokens": 1},
            lambda c, b: c.post(f"/engines/{CHAT_MODEL}/completions", body=b, cast_to=object),
            strings=("prompt", "model"),
            numbers=("max_tokens", "frequency_penalty"),
            lists=("prompt",),
            calls_model=True,
        ),
        "/v1/embeddings": Route(
            "/v1/embeddings",
            {"model": EMBEDDING_MODEL, "input": "hi"},
            lambda c, b: c.embeddings.create(**b),
            strings=("input", "model", "user", "encoding_format"),
            numbers=("dimensions",),
            lists=("input",),
            calls_model=True,
        ),
        "/v1/files": Route("/v1/files", None, lambda c, b: None),  # multipart: test_hostile_uploads
    }


ROUTES = (
    "/v1/assistants",
    "/v1/assistants/{assistant_id}",
    "/v1/threads",
    "/v1/threads/{thread_id}",
    "/v1/threads/{thread_id}/messages",
    "/v1/threads/{thread_id}/messages/{message_id}",
    "/v1/threads/{thread_id}/runs",
    "/v1/threads/{thread_id}/runs/{run_id}",
    "/v1/threads/runs",
    "/v1/vector_stores",
    "/v1/vector_stores/{vector_store_id}",
    "/v1/vector_stores/{vector_store_id}/search",
    "/v1/vector_stores/{vector_store_id}/files",
    "/v1/vector_stores/{vector_store_id}/files/{file_id}",
    "/v1/vector_stores/{vector_store_id}/file_batches",
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/engines/{engine}/completions",
    "/v1/embeddings",
    "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",  # last: an accepted output resumes the run
    "/v1/threads/{thread_id}/runs/{run_id}/cancel",
    "/v1/files",
)
JSON_ROUTES = tuple(route for route in ROUTES if route != "/v1/files")
FULL_BODY_ROUTES = (
    "/v1/assistants",
    "/v1/threads",
    "/v1/threads/{thread_id}/messages",
    "/v1/threads/runs",
    "/v1/vector_stores/{vector_store_id}/files",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/threads/{thread_id}/runs/{run_id}/cancel",  # takes no body
)


def app_write_routes() -> set[str]:
    """Every (path template) the app answers with a method that writes, from its routes (and its OpenAPI)."""

    def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[set[str], str]]:
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI's included routers
            if inner is not None:
                context = getattr(route, "include_context", None)
                yield from walk(inner.routes, prefix + getattr(context, "prefix", ""))
            elif hasattr(route, "routes") and not hasattr(route, "methods"):  # a mount or plain router
                yield from walk(route.routes, prefix + getattr(route, "path", ""))
            elif getattr(route, "methods", None):
                yield set(route.methods), prefix + route.path

    app = create_app()
    writes = {path for methods, path in walk(app.routes) if methods & {"POST", "PUT", "PATCH"}}
    for path, operations in app.openapi()["paths"].items():
        if set(operations) & {"post", "put", "patch"}:
            writes.add(path)
    return writes


def test_every_write_route_is_covered() -> None:
    writes = app_write_routes()
    assert writes, "no routes found: the walk over the app's routes no longer works"
    missing = writes - set(ROUTES)
    assert not missing, f"routes the hostile suite does not send to (add them to ROUTES and _route_table): {missing}"
    assert set(ROUTES) <= writes, f"routes the app no longer has: {set(ROUTES) - writes}"


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def objects(env: Env) -> Iterator[Objects]:
    run_cli(env.server.data_dir, "projects", "create", "hostile")
    key = run_cli(env.server.data_dir, "keys", "create", "--project", "hostile").strip()
    transport = ConformanceTransport()
    sdk = openai.OpenAI(
        base_url=f"{env.base_url}/v1",
        api_key=key,
        max_retries=0,
        timeout=TIMEOUT,
        http_client=httpx.Client(transport=ConformanceTransport(), timeout=TIMEOUT),
    )
    raw = httpx.Client(
        base_url=env.base_url, headers={"Authorization": f"Bearer {key}"}, transport=transport, timeout=TIMEOUT
    )
    noop = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}
    assistant = sdk.beta.assistants.create(model=CHAT_MODEL, name="hostile")
    tool_assistant = sdk.beta.assistants.create(model=CHAT_MODEL, tools=[noop], temperature=0)
    message_thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    message = sdk.beta.threads.messages.list(message_thread.id).data[0]
    run_thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    # a run that waits for tool outputs: the target of run updates and submit_tool_outputs (the call is forced)
    waiting = sdk.beta.threads.create_and_run(
        assistant_id=tool_assistant.id,
        thread={"messages": [{"role": "user", "content": "Call noop."}]},
        tool_choice={"type": "function", "function": {"name": "noop"}},
        max_completion_tokens=16,
    )
    waiting = wait_for(
        "the forced call",
        lambda: (
            run
            if (run := sdk.beta.threads.runs.retrieve(waiting.id, thread_id=waiting.thread_id)).status
            in TERMINAL | {"requires_action"}
            else None
        ),
    )
    assert waiting.status == "requires_action", waiting.last_error
    call_id = waiting.required_action.submit_tool_outputs.tool_calls[0].id
    uploaded = sdk.files.create(
        file=("notes.txt", b"Cats purr. Dogs bark. Hostile input is refused."), purpose="assistants"
    )
    store = sdk.vector_stores.create(name="hostile", file_ids=[uploaded.id])
    wait_for("ingestion", lambda: sdk.vector_stores.retrieve(store.id).file_counts.in_progress == 0)
    batch = sdk.vector_stores.file_batches.create(store.id, file_ids=[uploaded.id])
    # warm: every model this suite calls has answered once before memory is measured
    sdk.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    sdk.embeddings.create(model=EMBEDDING_MODEL, input="hi")
    sdk.vector_stores.search(store.id, query="cats")
    server = env.server
    pids = [process.pid for process in (server.process, server.worker) if process is not None]
    o = Objects(
        key=key,
        sdk=sdk,
        raw=raw,
        assistant=assistant.id,
        tool_assistant=tool_assistant.id,
        message_thread=message_thread.id,
        message=message.id,
        run_thread=run_thread.id,
        waiting_thread=waiting.thread_id,
        waiting_run=waiting.id,
        call_id=call_id,
        vector_store=store.id,
        file=uploaded.id,
        batch=batch.id,
        pids=pids,
    )
    o.threads |= {message_thread.id, run_thread.id, waiting.thread_id}
    o.vector_stores.add(store.id)
    o.assistants |= {assistant.id, tool_assistant.id}
    o.files.add(uploaded.id)
    o.runs.add((waiting.thread_id, waiting.id))
    o.rss_before = sum(rss_mb(pid) for pid in pids)
    try:
        yield o
    finally:
        for thread_id, run_id in o.runs:  # nothing of this suite keeps a worker busy after it
            try:
                if sdk.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status not in TERMINAL:
                    sdk.beta.threads.runs.cancel(run_id, thread_id=thread_id)
            except openai.APIError:
                pass
        sdk.close()
        raw.close()


def _placeholder_objects() -> Objects:
    ids = ("assistant", "tool_assistant", "message_thread", "message", "run_thread", "waiting_thread")
    more = ("waiting_run", "call_id", "vector_store", "file", "batch")
    return Objects(key="", sdk=None, raw=None, pids=[], **dict.fromkeys(ids + more, "x"))


@pytest.fixture(scope="module")
def routes(objects: Objects) -> dict[str, Route]:
    return _route_table(objects)


@pytest.fixture(autouse=True)
def _memory_steps(request: pytest.FixtureRequest) -> Iterator[None]:
    """The server's RSS before and after each test of the suite: a failure of the bound says which test grew it."""
    if "objects" not in request.fixturenames:
        yield
        return
    o: Objects = request.getfixturevalue("objects")
    before = sum(rss_mb(pid) for pid in o.pids)
    yield
    o.rss_steps.append((sum(rss_mb(pid) for pid in o.pids) - before, request.node.name))


# ---------------------------------------------------------------------------------------------------------------
# Sending and judging


def _remember(o: Objects, answer: Any) -> None:
    """Objects that hostile input created: the lists at the end read them back."""
    if not isinstance(answer, dict):
        return
    kind, ident = answer.get("object"), answer.get("id")
    if kind == "assistant":
        o.assistants.add(ident)
    elif kind == "thread":
        o.threads.add(ident)
    elif kind == "thread.run":
        o.threads.add(answer["thread_id"])
        o.runs.add((answer["thread_id"], ident))
    elif kind == "thread.message":
        o.threads.add(answer["thread_id"])
    elif kind == "vector_store":
        o.vector_stores.add(ident)
    elif kind == "file":
        o.files.add(ident)


def _value_name(label: str) -> str:
    """ "raw metadata.k=emoji" → "emoji"; "raw body utf16" → "utf16"."""
    return re.split(r"[=:]| body ", label)[-1]


def judge(o: Objects, label: str, response: httpx.Response | None, seconds: float, expect: int | None) -> str | None:
    """None when the answer is one a hostile request may get; else what was wrong."""
    o.cases += 1
    o.seconds[_value_name(label)] += seconds
    if seconds > o.slowest[0]:
        o.slowest = (seconds, label)
    if response is None:
        return f"{label}: no answer"
    status = response.status_code
    text = response.text[:300]
    if status >= 500:
        return f"{label}: {status} {text}"
    if expect is not None and status != expect:
        return f"{label}: expected {expect}, got {status} {text}"
    if 200 <= status < 300:
        o.accepted += 1
        if response.headers.get("content-type", "").startswith("application/json"):
            _remember(o, response.json())
        return None
    if not 400 <= status < 500:
        return f"{label}: {status} {text}"
    try:
        error = assert_error_shape(response)
    except (AssertionError, ValueError) as exc:
        return f"{label}: {status} without OpenAI's error shape ({exc}): {text}"
    if expect == 400 and error["param"] is None and "parsing" not in error["message"]:
        return f"{label}: 400 names no parameter: {text}"
    return None


def send_raw(o: Objects, label: str, path: str, content: bytes, headers: dict[str, str], expect: int | None):
    started = time.monotonic()
    try:
        response = o.raw.post(path, content=content, headers={"content-type": "application/json", **headers})
        response.read()
    except httpx.HTTPError as exc:
        return f"{label}: {type(exc).__name__} {exc} after {time.monotonic() - started:.1f}s"
    return judge(o, label, response, time.monotonic() - started, expect)


def send_sdk(o: Objects, route: Route, label: str, body: dict[str, Any], expect: int | None):
    started = time.monotonic()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # the SDK walks the body recursively: deep schemas are deep
    try:
        answer = route.sdk(o.sdk, body)
    except openai.APIStatusError as exc:
        return judge(o, label, exc.response, time.monotonic() - started, expect)
    except openai.APIError as exc:  # no answer: a timeout, a dropped connection
        return f"{label}: {type(exc).__name__} {exc} ({exc.__cause__!r}) after {time.monotonic() - started:.1f}s"
    except TypeError as exc:  # the SDK method has no such parameter: the route table is wrong
        return f"{label}: the SDK refused the call: {exc}"
    finally:
        sys.setrecursionlimit(limit)
    o.cases += 1
    o.accepted += 1
    o.seconds[_value_name(label)] += time.monotonic() - started
    if expect is not None and expect != 200:
        return f"{label}: expected {expect}, the SDK got an answer"
    _remember(o, answer.model_dump() if hasattr(answer, "model_dump") else answer)
    return None


def hostile_cases(route: Route, category: str) -> Iterator[tuple[str, dict[str, Any], Value, bool]]:
    """(label, body, value, also through the SDK) for one route and one family of values."""
    for label, make, value, through_sdk in _cases(route, category):
        if label in route.skip:
            continue
        try:
            body = make()
        except TypeError:  # a number as a JSON key: no JSON says that
            continue
        yield label, body, value, through_sdk


def _cases(route: Route, category: str) -> Iterator[tuple[str, Callable[[], dict[str, Any]], Value, bool]]:
    base = route.body or {}

    def at(slot: str, value: Any) -> Callable[[], dict[str, Any]]:
        return lambda: put(base, slot, value)

    if category == "strings":
        for index, slot in enumerate(route.strings):
            for name, value in STRINGS.items():
                allowed = STRINGS if index == 0 else CORE_STRINGS + (("huge",) if index == 1 else ())
                if name not in allowed:
                    continue  # the first slot takes every value, the others the core of each family
                if route.calls_model and index > 0 and not value.sure_refusal:
                    continue  # accepted text costs a model call: one slot carries it
                if name == "over_body_limit" and index > 0:
                    continue  # the body's size, not the slot, decides
                # where answers cost a model call, the SDK sends the refusals and one emoji
                sdk = name in SDK_STRINGS and (not route.calls_model or value.sure_refusal or name == "emoji")
                yield f"{slot}={name}", at(slot, value.value), value, sdk
    elif category == "numbers":
        for index, slot in enumerate(route.numbers):
            for name, value in NUMBERS.items():
                if route.calls_model and name not in MODEL_NUMBERS:
                    continue
                if index > 0 and name not in CORE_NUMBERS:
                    continue
                if route.calls_model and slot == "max_tokens" and name == "int64_max":
                    continue  # accepted: generation up to the whole context, minutes of CPU here
                sdk = name in (("beyond_64_bits", "e308") if route.calls_model else SDK_NUMBERS)
                yield f"{slot}={name}", at(slot, value.value), value, sdk
    elif category == "types":
        for index, slot in enumerate(route.strings[:1] + route.numbers[:1] + route.maps[:1] + route.lists[:1]):
            for name, value in TYPES.items():
                if route.calls_model and name in ("null", "true", "int") and index > 0:
                    continue  # often accepted (null is absent): once is enough where it costs a model call
                yield f"{slot}={name}", at(slot, value.value), value, name in SDK_TYPES
    elif category == "maps":
        for slot in route.maps:
            for name, value in MAPS.items():
                yield f"{slot}={name}", at(slot, value.value), value, name in ("17_pairs", "key_65", "value_513")
    elif category == "lists":
        for slot in route.lists:
            for name, value in LISTS.items():
                yield f"{slot}={name}", at(slot, value.value), value, name == "5k_strings"
    elif category == "schemas":
        for slot in route.schemas:
            for name, schema in SCHEMAS.items():
                if slot == "response_format":
                    value = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
                else:
                    value = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
                expect = 400 if name == "nesting_400" else None
                yield (
                    f"{slot}:{name}",
                    at(slot, value),
                    Value(schema, expect),
                    name in ("min_length_1e9", "nesting_400"),
                )


CATEGORIES = ("strings", "numbers", "types", "maps", "lists", "schemas")


# Routes that store nothing but usage: what they answer does not depend on the store, so the scaled-out pass
# (PostgreSQL) leaves them to the SQLite one.
STATELESS_ROUTES = {"/v1/chat/completions", "/v1/completions", "/v1/engines/{engine}/completions", "/v1/embeddings"}


def _param(template: str, *rest: str) -> Any:
    marks = [pytest.mark.backend_independent] if template in STATELESS_ROUTES else []
    return pytest.param(template, *rest, marks=marks)


def _value_tests() -> list[tuple[str, str]]:
    """(template, category) for each route that has a slot of that category (the slots do not depend on ids)."""
    shapes = _route_table(_placeholder_objects())
    return [
        (template, category)
        for template in JSON_ROUTES
        for category in CATEGORIES
        if shapes[template].body is not None and (category == "types" or getattr(shapes[template], category))
    ]


@pytest.mark.parametrize(("template", "category"), [_param(*case) for case in _value_tests()])
def test_hostile_values(objects: Objects, routes: dict[str, Route], template: str, category: str) -> None:
    route = routes[template]
    cases = list(hostile_cases(route, category))
    failures = []
    for label, body, value, through_sdk in cases:
        failures.append(send_raw(objects, f"raw {label}", route.path, _json(body), {}, value.expect))
        if through_sdk and sdk_can_send(body):
            failures.append(send_sdk(objects, route, f"sdk {label}", body, value.expect))
    failures = [failure for failure in failures if failure]
    assert not failures, f"{template}:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("template", [_param(template) for template in JSON_ROUTES])
def test_hostile_bodies(objects: Objects, routes: dict[str, Route], template: str) -> None:
    route = routes[template]
    base = route.body or {}
    failures = []
    for name, make in BODIES.items():
        if name not in CORE_BODIES and template not in FULL_BODY_ROUTES:
            continue
        content, headers = make(base)
        expect = BODY_EXPECT.get(name)
        failures.append(send_raw(objects, f"raw body {name}", route.path, content, headers, expect))
    failures = [failure for failure in failures if failure]
    assert not failures, f"{template}:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("template", [_param(template) for template in JSON_ROUTES if "{" in template])
def test_hostile_path_segments(objects: Objects, routes: dict[str, Route], template: str) -> None:
    """Each id (or engine) in the path replaced by hostile text: 404 or 400, never 5xx."""
    route = routes[template]
    failures = []
    actual = route.path.split("/")
    for index, part in enumerate(template.split("/")):
        if not part.startswith("{"):
            continue
        for name, segment in PATH_SEGMENTS.items():
            path = "/".join([*actual[:index], segment, *actual[index + 1 :]])
            label = f"raw {part}={name}"
            failures.append(send_raw(objects, label, path, _json(route.body or {}), {}, None))
    failures = [failure for failure in failures if failure]
    assert not failures, f"{template}:\n" + "\n".join(failures[:40])


# ---------------------------------------------------------------------------------------------------------------
# Files: names and contents


def form(*parts: tuple[bytes, bytes | None, bytes], boundary: bytes = b"hostile") -> bytes:
    """A multipart body of (field name, file name or None, content) parts."""
    body = b""
    for name, filename, content in parts:
        disposition = (
            b'form-data; name="' + name + b'"' + (b'; filename="' + filename + b'"' if filename is not None else b"")
        )
        body += b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n"
        body += (b"Content-Type: application/octet-stream\r\n" if filename is not None else b"") + b"\r\n"
        body += content + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def multipart(filename: bytes, content: bytes, purpose: bytes = b"assistants") -> bytes:
    return form((b"purpose", None, purpose), (b"file", filename, content))


FILENAMES: dict[str, tuple[bytes, int | None]] = {
    "nul": (b"a\x00b.txt", 400),
    "traversal": (b"../../etc/passwd", None),
    "windows_traversal": (b"..\\..\\windows\\win.ini", None),
    "absolute": (b"/etc/shadow", None),
    "dot_dot": (b"..", None),
    "slash_only": (b"/", 400),
    "empty": (b"", 400),
    "chars_10k": (b"a" * 10_000 + b".txt", 400),
    "chars_600": (b"a" * 600 + b".txt", 400),
    "rtl_override": ("\u202etxt.exe".encode(), None),
    "emoji": ("👩‍👩‍👧‍👦.md".encode(), None),
    "invalid_utf8": (b"\xff\xfe\xfd.txt", None),
    "encoded_surrogate": (b"\xed\xa0\x80.txt", None),
    "crlf_injection": (b"a.txt\r\nContent-Type: text/html", None),
    "quote": (b'a".txt', None),
    "percent_encoded": (b"%2e%2e%2f%00.txt", None),
}

GARBAGE = os.urandom(4096)
CONTENTS: dict[str, tuple[str, bytes]] = {  # name → (file name, bytes); all accepted, ingestion decides
    "garbage_txt": ("garbage.txt", GARBAGE),
    "garbage_pdf": ("garbage.pdf", GARBAGE),
    "garbage_docx": ("garbage.docx", GARBAGE),
    "pdf_header_garbage": ("header.pdf", b"%PDF-1.7\n" + GARBAGE),
    "zip_header_docx": ("header.docx", b"PK\x03\x04" + GARBAGE),
    "html_bogus_charset": ("page.html", b'<html><meta charset="x-bogus"><body>\xff\xfe\x80 hi</body></html>'),
    "json_nested": ("deep.json", b"[" * 100_000),
    "nul_bytes_txt": ("nul.txt", b"\x00" * 4096),
    "encoded_surrogates_md": ("s.md", b"\xed\xa0\x80" * 100),
    "utf16_txt": ("utf16.txt", "Cats purr. 猫は喉を鳴らす。".encode("utf-16")),
    "one_line_500k": ("line.txt", b"x" * 500_000),
    "no_extension": ("README", b"plain words"),
}


def test_hostile_uploads(objects: Objects) -> None:
    """File names, file contents and multipart bodies: each upload a 4xx or a file whose bytes read back."""
    o, failures = objects, []
    for name, (filename, expect) in FILENAMES.items():
        content = b"hostile name " + name.encode()
        body = multipart(filename, content)
        failures.append(
            send_raw(
                o,
                f"raw filename {name}",
                "/v1/files",
                body,
                {"content-type": "multipart/form-data; boundary=hostile"},
                expect,
            )
        )
        text_name = filename.decode("utf-8", errors="surrogateescape")
        try:
            uploaded = o.sdk.files.create(file=(text_name, content), purpose="assistants")
        except openai.APIStatusError as exc:
            failures.append(judge(o, f"sdk filename {name}", exc.response, 0, None))
        except (UnicodeError, ValueError, TypeError):
            pass  # not sendable by the SDK
        except openai.APIError as exc:
            failures.append(f"sdk filename {name}: {exc!r} ({exc.__cause__!r})")
        else:
            o.files.add(uploaded.id)
            if "/" in uploaded.filename or "\\" in uploaded.filename or "\x00" in uploaded.filename:
                failures.append(f"sdk filename {name}: stored as a path: {uploaded.filename!r}")
            back = o.raw.get(f"/v1/files/{uploaded.id}/content")
            if back.status_code != 200 or back.content != content:
                failures.append(f"sdk filename {name}: content answers {back.status_code}")
    multipart_type = {"content-type": "multipart/form-data; boundary=hostile"}
    bodies: dict[str, tuple[bytes, dict[str, str], int | None]] = {
        "empty_file": (multipart(b"e.txt", b""), multipart_type, 400),
        "over_upload_limit": (multipart(b"big.txt", b"x" * (MAX_UPLOAD_BYTES + 1)), multipart_type, 413),
        "truncated_200": (multipart(b"t.txt", b"x" * 1000)[:200], multipart_type, 400),
        "truncated_in_headers": (multipart(b"t.txt", b"x")[:60], multipart_type, 400),
        "no_closing_boundary": (multipart(b"t.txt", b"x")[:-12], multipart_type, None),
        "no_boundary": (b"garbage", {"content-type": "multipart/form-data"}, 400),
        "boundary_5000": (b"garbage", {"content-type": "multipart/form-data; boundary=" + "b" * 5000}, 400),
        "json_instead": (b'{"file": "x", "purpose": "assistants"}', {"content-type": "application/json"}, 400),
        "purpose_surrogate": (
            multipart(b"p.txt", b"x", purpose="\ud800".encode("utf-8", "surrogatepass")),
            multipart_type,
            400,
        ),
        "purpose_nul": (multipart(b"p.txt", b"x", purpose=b"assistants\x00"), multipart_type, 400),
        "purpose_huge": (multipart(b"p.txt", b"x", purpose=b"a" * 500_000), multipart_type, 400),
        "many_fields": (
            form(*[(b"purpose", None, b"assistants")] * 50, (b"file", b"m.txt", b"x")),
            multipart_type,
            400,
        ),
        "two_files": (
            form((b"purpose", None, b"assistants"), (b"file", b"a.txt", b"x"), (b"file", b"b.txt", b"y")),
            multipart_type,
            400,
        ),
        "file_as_field": (form((b"purpose", None, b"assistants"), (b"file", None, b"x")), multipart_type, 400),
        "no_purpose": (form((b"file", b"a.txt", b"x")), multipart_type, 400),
    }
    for name, (content, headers, expect) in bodies.items():
        failures.append(send_raw(o, f"raw multipart {name}", "/v1/files", content, headers, expect))
    for seconds in ("-1", "1e309", "NaN", "99999999999999999999999", "\x00", "3600.5"):
        data = {"purpose": "assistants", "expires_after[anchor]": "created_at", "expires_after[seconds]": seconds}
        started = time.monotonic()
        response = o.raw.post("/v1/files", files={"file": ("e.txt", b"x")}, data=data)
        failures.append(judge(o, f"raw expires_after={seconds!r}", response, time.monotonic() - started, None))
    # contents: each accepted, then ingested into a vector store, where it is completed or failed with a reason
    ids = {}
    for name, (filename, content) in CONTENTS.items():
        uploaded = o.sdk.files.create(file=(filename, content), purpose="assistants")
        o.files.add(uploaded.id)
        ids[name] = uploaded.id
    store = o.sdk.vector_stores.create(name="garbage", file_ids=list(ids.values()))
    o.vector_stores.add(store.id)
    wait_for("garbage ingestion", lambda: o.sdk.vector_stores.retrieve(store.id).file_counts.in_progress == 0, 120)
    for entry in o.sdk.vector_stores.files.list(store.id, limit=100).data:
        if entry.status not in ("completed", "failed") or (entry.status == "failed" and not entry.last_error):
            failures.append(f"ingestion of {entry.id}: {entry.status} {entry.last_error}")
        elif entry.status == "failed" and entry.last_error.code == "server_error":
            failures.append(f"ingestion of {entry.id}: a server_error for a bad file: {entry.last_error.message}")
    for name, file_id in ids.items():
        back = o.raw.get(f"/v1/files/{file_id}/content")
        if back.status_code != 200 or back.content != CONTENTS[name][1]:
            failures.append(f"content of {name}: {back.status_code}")
    failures.append(
        judge(o, "search over garbage", o.raw.post(f"/v1/vector_stores/{store.id}/search", json={"query": "x"}), 0, 200)
    )
    failures = [failure for failure in failures if failure]
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------------------------------------------
# What this suite found, each on its own


def _refusal(o: Objects, path: str, body: Any) -> dict[str, Any]:
    started = time.monotonic()
    response = o.raw.post(path, content=_json(body), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    assert time.monotonic() - started < 15, "a refusal is quick"
    return assert_error_shape(response)


def test_nan_and_infinity_are_a_400_not_a_null(objects: Objects) -> None:
    """NaN and Infinity (which Python's JSON reads) were stored as null in attributes, and an infinite search
    weight made every result vanish."""
    o = objects
    store = f"/v1/vector_stores/{o.vector_store}"
    cases = [
        (f"{store}/files/{o.file}", {"attributes": {"k": float("nan")}}, "attributes"),
        (f"{store}/files", {"file_id": o.file, "attributes": {"k": float("inf")}}, "attributes"),
        (
            f"{store}/search",
            {"query": "cats", "filters": {"type": "gt", "key": "k", "value": float("-inf")}},
            "filters",
        ),
        (
            f"{store}/search",
            {
                "query": "cats",
                "ranking_options": {"hybrid_search": {"embedding_weight": float("inf"), "text_weight": 1}},
            },
            "ranking_options",
        ),
    ]
    for path, body, param in cases:
        error = _refusal(o, path, body)
        assert error["param"].startswith(param) and "finite" in error["message"], error


def test_a_schema_nested_400_levels_is_a_400_not_a_500(objects: Objects) -> None:
    """Parsed, validated, then unserializable (pydantic stops at 255 levels): a 500 on every route taking one."""
    o, schema = objects, nested_schema(400)
    response_format = {"type": "json_schema", "json_schema": {"name": "deep", "schema": schema}}
    tools = [{"type": "function", "function": {"name": "deep", "parameters": schema}}]
    chat = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    for path, body, param in [
        ("/v1/assistants", {"model": CHAT_MODEL, "response_format": response_format}, "response_format"),
        ("/v1/chat/completions", {**chat, "tools": tools}, "tools"),
        (f"/v1/threads/{o.run_thread}/runs", {"assistant_id": o.assistant, "tools": tools}, "tools"),
    ]:
        error = _refusal(o, path, body)
        assert error["param"].startswith(param) and "nested" in error["message"], error


def test_an_empty_prompt_is_a_new_document(objects: Objects) -> None:
    """An empty prompt gave llama.cpp no token to sample after (an assertion inside it): 500."""
    for prompt in ("", [""]):
        completion = objects.sdk.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=1)
        assert len(completion.choices) == 1 and completion.usage.completion_tokens == 1


def test_many_bad_items_are_reported_by_the_first_and_quickly(objects: Objects) -> None:
    """100,000 bad messages made 100,000 errors, each rendered (a second of CPU for 300 KB), and the error named
    messages[10000]."""
    error = _refusal(objects, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": [0] * 100_000})
    assert error["param"] == "messages[0]", error


def test_schema_references_and_alternatives(objects: Objects) -> None:
    """A root `$ref` to a definition that refers to another was refused ("'#/$defs/assistd-def-0-1'"); 5,000
    `anyOf` branches were accepted at about a second of CPU per generated token."""
    definitions = {
        "word": {"type": "string", "maxLength": 5},
        "pair": {"type": "object", "properties": {"a": {"$ref": "#/$defs/word"}}, "required": ["a"]},
    }
    answer = objects.sdk.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=1,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "pair", "schema": {"$defs": definitions, "$ref": "#/$defs/pair"}},
        },
    )
    assert answer.choices[0].message.content.startswith("{")
    schema = {"anyOf": [{"const": f"c{i}"} for i in range(5000)]}
    body = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "many", "schema": schema}},
    }
    error = _refusal(objects, "/v1/chat/completions", body)
    assert error["param"] == "response_format" and "anyOf" in error["message"], error


def test_a_function_with_thousands_of_parameters_is_a_400(objects: Objects) -> None:
    """5,000 string parameters made an 8.6 MB grammar: 4 s and +380 MB of the server per request, on runs and
    chat completions alike (ten times as many fit in the default 16 MB body)."""
    strings = {f"p{i}": {"type": "string"} for i in range(5000)}
    parameters = {"type": "object", "properties": strings, "required": list(strings)}
    tools = [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    chat = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "tools": tools}
    for path, body in [
        ("/v1/chat/completions", chat),
        (f"/v1/threads/{objects.run_thread}/runs", {"assistant_id": objects.assistant, "tools": tools}),
    ]:
        error = _refusal(objects, path, body)
        assert error["param"] == "tools" and "grammar" in error["message"], error


# ---------------------------------------------------------------------------------------------------------------
# Afterwards


def test_runs_of_hostile_input_end(objects: Objects) -> None:
    """Runs that hostile input started reach a terminal state (or wait for tools), each readable with its steps."""
    o = objects
    pending = {run for run in o.runs if run[1] != o.waiting_run}

    def settled() -> bool:
        for thread_id, run_id in list(pending):
            if o.sdk.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status in TERMINAL | {"requires_action"}:
                pending.discard((thread_id, run_id))
        return not pending

    wait_for(f"{len(pending)} runs to end", settled, 180)


def test_memory_stays_bounded(objects: Objects) -> None:
    after = sum(rss_mb(pid) for pid in objects.pids)
    growth = after - objects.rss_before
    print(
        f"\nhostile suite: {objects.cases} answers ({objects.accepted} accepted), slowest {objects.slowest[0]:.1f}s "
        f"({objects.slowest[1]}); RSS {objects.rss_before} → {after} MB; most time: "
        + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in objects.seconds.most_common(12))
    )
    steps = ", ".join(f"{name} +{mb} MB" for mb, name in sorted(objects.rss_steps, reverse=True)[:8])
    assert growth < MAX_RSS_GROWTH_MB, f"the server grew by {growth} MB ({objects.rss_before} → {after}): {steps}"


def test_every_list_still_answers(objects: Objects) -> None:
    """After all of it, every list (and every object hostile input created) reads back: 200, not 500."""
    o, failures = objects, []

    def get(path: str, **params: Any) -> None:
        response = o.raw.get(path, params=params)
        if response.status_code != 200:
            failures.append(f"GET {path} {params}: {response.status_code} {response.text[:200]}")

    def walk(path: str) -> None:
        """Every page of a list."""
        after: str | None = None
        for _ in range(100):
            response = o.raw.get(path, params={"limit": 100, "order": "asc", **({"after": after} if after else {})})
            if response.status_code != 200:
                failures.append(f"GET {path} after={after}: {response.status_code} {response.text[:200]}")
                return
            page = response.json()
            if not page["data"] or not page.get("has_more"):
                return
            after = page["data"][-1]["id"]

    for path in ("/v1/assistants", "/v1/vector_stores", "/v1/files"):
        walk(path)
        get(path, order="desc", limit=1)
    get("/v1/models")
    for assistant in o.assistants:
        get(f"/v1/assistants/{assistant}")
    for thread in o.threads:
        get(f"/v1/threads/{thread}")
        get(f"/v1/threads/{thread}/messages", limit=100)
        get(f"/v1/threads/{thread}/runs", limit=100)
    for thread, run in o.runs:
        get(f"/v1/threads/{thread}/runs/{run}/steps", limit=100)
    for store in o.vector_stores:
        get(f"/v1/vector_stores/{store}")
        walk(f"/v1/vector_stores/{store}/files")
    get(f"/v1/vector_stores/{o.vector_store}/file_batches/{o.batch}")
    walk(f"/v1/vector_stores/{o.vector_store}/file_batches/{o.batch}/files")
    for file in o.files:
        get(f"/v1/files/{file}")
    assert not failures, "\n".join(failures[:40])
