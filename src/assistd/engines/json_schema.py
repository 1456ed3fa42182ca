"""JSON schemas → GBNF grammars, for the schemas that OpenAI accepts in strict mode.

llama-cpp-python's converter does the bulk of the work; this module prepares a schema for it and fills its gaps:

- Local `$ref`s (`#/$defs/...`, `#/definitions/...`, any JSON pointer, `#` itself, recursion) are rewritten to
  one `$defs` table at the root under collision-free names, so a schema can be nested inside another (a
  function's parameters inside a call) and two schemas may each define `Item` differently.
- `"type": [..]` lists become `anyOf` branches that keep the keywords of their type (the converter would drop
  them); `enum`/`const` keep only the values of the listed types.
- `minimum`/`maximum` (and the exclusive forms) on integers are enforced digit by digit; on numbers the
  grammar allows the values of the range written with an integer part inside it.
- Keywords that constrain values but cannot be enforced (`not`, `if`, `patternProperties`, `uniqueItems`,
  `multipleOf`, ...) are a 400 naming the keyword and where it is, instead of an answer that breaks them.
- The work is bounded: nesting depth and repetition counts are capped before any grammar is built.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import unquote

from llama_cpp.llama_grammar import RESERVED_NAMES, SchemaConverter

from assistd.engines.base import SchemaBounds
from assistd.errors import InvalidRequest

UNSUPPORTED_KEYWORDS = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "patternProperties",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "$dynamicRef",
        "$recursiveRef",
    }
)
_CONTAINERS = ("$defs", "definitions")
_TYPE_KEYWORDS = {
    "string": {"pattern", "format", "minLength", "maxLength"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "array": {"items", "prefixItems", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
}
_REPETITION_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")
_TYPE_OF = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


class _Unsupported(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    kind = _TYPE_OF.get(type(value), "object")
    return "integer" if kind == "number" and float(value).is_integer() else kind


class _Preparer:
    """Rewrites schemas into one grammar-ready document (see the module docstring)."""

    def __init__(self, bounds: SchemaBounds) -> None:
        self.bounds = bounds
        self.defs: dict[str, Any] = {}
        self._names: dict[tuple[int, str], str] = {}
        self._nodes = 0

    def add(self, schema: Any, tag: str) -> Any:
        """`schema`, prepared; the definitions it refers to go to `self.defs` under names starting with `tag`."""
        self._root, self._tag = schema, tag
        self._serial = len(self.defs)
        return self._prepare(schema, "", 0)

    def _prepare(self, node: Any, where: str, depth: int) -> Any:
        bounds = self.bounds
        if depth > bounds.max_depth:
            raise _Unsupported(f"the schema is nested more than {bounds.max_depth} levels deep (at {where or '/'})")
        self._nodes += 1
        if self._nodes > bounds.max_subschemas:
            raise _Unsupported(f"the schema has more than {bounds.max_subschemas} subschemas (at {where or '/'})")
        if node is True:
            return {}
        if node is False:
            raise _Unsupported(f"a `false` schema admits no value (at {where or '/'})")
        if not isinstance(node, dict):
            raise _Unsupported(f"a schema must be an object (at {where or '/'}), not {json.dumps(node)[:40]}")
        if unsupported := sorted(UNSUPPORTED_KEYWORDS & node.keys()):
            raise _Unsupported(f"'{unsupported[0]}' cannot be enforced (at {where or '/'})")
        for keyword in _REPETITION_KEYWORDS:
            value = node.get(keyword)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise _Unsupported(f"'{keyword}' must be a non-negative integer (at {where or '/'})")
            if keyword.startswith("min") and value is not None and value > bounds.max_repetition:
                raise _Unsupported(f"'{keyword}' above {bounds.max_repetition} cannot be enforced (at {where or '/'})")
        if isinstance(node.get("enum"), list) and len(node["enum"]) > bounds.max_enum_values:
            raise _Unsupported(f"'enum' has more than {bounds.max_enum_values} values (at {where or '/'})")
        for keyword in ("anyOf", "oneOf"):  # alternatives too: 5,000 branches cost a second a token here
            if isinstance(node.get(keyword), list) and len(node[keyword]) > bounds.max_enum_values:
                raise _Unsupported(f"'{keyword}' has more than {bounds.max_enum_values} branches (at {where or '/'})")
        if "$ref" in node:
            return {"$ref": "#/$defs/" + self._definition(node["$ref"], where, depth)}
        prepared: dict[str, Any] = {}
        for key, value in node.items():
            if key in _CONTAINERS:
                continue  # definitions are reached through their references
            path = f"{where}/{key}"
            if key in ("properties",) and isinstance(value, dict):
                prepared[key] = {name: self._prepare(sub, f"{path}/{name}", depth + 1) for name, sub in value.items()}
            elif key in ("anyOf", "oneOf", "allOf", "prefixItems", "items") and isinstance(value, list):
                prepared[key] = [self._prepare(sub, f"{path}/{i}", depth + 1) for i, sub in enumerate(value)]
            elif key in ("items", "additionalProperties") and isinstance(value, dict | bool):
                prepared[key] = value if isinstance(value, bool) else self._prepare(value, path, depth + 1)
            elif key in ("maxLength", "maxItems") and value > bounds.max_repetition:
                prepared[key] = bounds.max_repetition  # a tighter bound: what the grammar allows still matches
            elif key == "pattern" and isinstance(value, str) and _longest_repeat(value) > bounds.max_repetition:
                raise _Unsupported(f"'pattern' repeats more than {bounds.max_repetition} times (at {where or '/'})")
            else:
                prepared[key] = value
        if "allOf" in prepared and not all("properties" in self._target(part) for part in prepared["allOf"]):
            raise _Unsupported(f"'allOf' is enforced only over objects with properties (at {where or '/'})")
        return _split_type_list(prepared)

    def _target(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return self.defs.get(ref.removeprefix("#/$defs/"), {}) if ref else schema

    def _definition(self, ref: Any, where: str, depth: int) -> str:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Unsupported(f"'$ref' {json.dumps(ref)[:80]} is not a local reference (at {where or '/'})")
        target: Any = self._root
        for part in ref[1:].split("/")[1:] if ref not in ("#", "#/") else []:
            key = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            elif isinstance(target, dict) and key in target:
                target = target[key]
            else:
                raise _Unsupported(f"'$ref' {ref} points at nothing (at {where or '/'})")
        identity = (id(target), self._tag)
        if identity not in self._names:
            name = f"{self._tag}-{self._serial}"
            self._serial += 1
            self._names[identity] = name
            self.defs[name] = {}  # reserved first: the definition may refer to itself
            self.defs[name] = self._prepare(target, ref[1:] or "/", depth + 1)
        return self._names[identity]


def _longest_repeat(pattern: str) -> int:
    """The largest count in the pattern's `{n}`, `{n,}` and `{n,m}` quantifiers (0 without any)."""
    quantifiers = re.findall(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}", pattern)
    return max((int(number) for bounds in quantifiers for number in bounds if number), default=0)


def _split_type_list(schema: dict[str, Any]) -> dict[str, Any]:
    """`{"type": [a, b], ...}` → `{"anyOf": [{"type": a, ...a's keywords}, ...]}`; enums keep matching values."""
    types = schema.get("type")
    if not isinstance(types, list):
        return schema
    if "enum" in schema or "const" in schema:
        values = schema["enum"] if "enum" in schema else [schema["const"]]
        allowed = set(types) | ({"integer"} if "number" in types else set())
        kept = [value for value in values if _json_type(value) in allowed]
        rest = {key: value for key, value in schema.items() if key not in ("type", "enum", "const")}
        return {**rest, "enum": kept}
    shared = {key: value for key, value in schema.items() if key != "type" and not _is_type_keyword(key)}
    branches = [
        {"type": kind, **{key: value for key, value in schema.items() if key in _TYPE_KEYWORDS.get(kind, ())}}
        for kind in types
    ]
    return {**shared, "anyOf": branches}


def _is_type_keyword(key: str) -> bool:
    return any(key in keywords for keywords in _TYPE_KEYWORDS.values())


# -- integer ranges -----------------------------------------------------------------------------------------


def _same_length_range(low: str, high: str) -> str:
    """A GBNF sequence matching the digit strings of one length from `low` to `high` (inclusive)."""
    if low == high:
        return f'"{low}"'
    if len(low) == 1:
        return f"[{low}-{high}]"
    rest = len(low) - 1
    if low[0] == high[0]:
        return f'"{low[0]}" ({_same_length_range(low[1:], high[1:])})'
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return f"[{low[0]}-{high[0]}]" + " [0-9]" * rest
    options = [f'"{low[0]}" ({_same_length_range(low[1:], "9" * rest)})']
    if int(high[0]) - int(low[0]) > 1:
        options.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}]" + " [0-9]" * rest)
    options.append(f'"{high[0]}" ({_same_length_range("0" * rest, high[1:])})')
    return " | ".join(f"({option})" for option in options)


def _natural_range(low: int, high: int | None) -> str:
    """Decimal numerals (no sign, no leading zeros) from `low` to `high` (None: at most 16 digits)."""
    longest = len(str(high)) if high is not None else max(len(str(low)), 16)
    options = []
    for length in range(len(str(low)), longest + 1):
        start = max(low, 10 ** (length - 1) if length > 1 else 0)
        end = min(high if high is not None else 10**length - 1, 10**length - 1)
        if start <= end:
            options.append(_same_length_range(str(start), str(end)))
    return " | ".join(f"({option})" for option in options)


def integer_range(low: int | None, high: int | None) -> str:
    """A GBNF expression for the integers in [low, high] (either side open when None)."""
    options = []
    if low is None or low < 0:  # negative numbers: "-" then the magnitude
        magnitude_low = max(1, -high) if high is not None else 1
        magnitude_high = -low if low is not None else None
        if magnitude_high is None or magnitude_low <= magnitude_high:
            options.append(f'"-" ({_natural_range(magnitude_low, magnitude_high)})')
    if high is None or high >= 0:
        options.append(_natural_range(max(low or 0, 0), high))
    return " | ".join(f"({option})" for option in options)


def _bounds(schema: dict[str, Any]) -> tuple[float | None, float | None, bool, bool]:
    """(low, high, low_inclusive, high_inclusive) of a numeric schema, in both drafts' spellings."""
    for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        value = schema.get(keyword)
        if value is None or (keyword.startswith("exclusive") and isinstance(value, bool)):
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise _Unsupported(f"'{keyword}' must be a finite number, not {json.dumps(value)[:40]}")
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open = schema.get("exclusiveMinimum") is True  # draft 4: a flag on minimum
    high_open = schema.get("exclusiveMaximum") is True
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if not isinstance(exclusive_low, bool | None) and (low is None or exclusive_low >= low):
        low, low_open = exclusive_low, True
    if not isinstance(exclusive_high, bool | None) and (high is None or exclusive_high <= high):
        high, high_open = exclusive_high, True
    return low, high, not low_open, not high_open


def _integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    low, high, low_in, high_in = _bounds(schema)
    int_low = (
        None if low is None else (math.floor(low) + 1 if not low_in and float(low).is_integer() else math.ceil(low))
    )
    int_high = (
        None
        if high is None
        else (math.ceil(high) - 1 if not high_in and float(high).is_integer() else math.floor(high))
    )
    for value in (int_low, int_high):
        if value is not None and abs(value) >= 10**15:
            raise _Unsupported("numeric bounds beyond 10^15 cannot be enforced")
    return int_low, int_high


class _BoundedConverter(SchemaConverter):
    """llama-cpp-python's converter, with numeric bounds enforced."""

    def visit(self, schema: dict[str, Any], name: str) -> str:
        kind = schema.get("type")
        bounded = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & schema.keys()
        if kind in ("integer", "number") and bounded and not {"enum", "const"} & schema.keys():
            rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
            return self._add_rule(rule_name, self._numeric_rule(schema, kind == "integer"))
        return super().visit(schema, name)

    def _numeric_rule(self, schema: dict[str, Any], integral: bool) -> str:
        low, high = _integer_bounds(schema)
        if low is not None and high is not None and low > high:
            raise _Unsupported(
                f"no {'integer' if integral else 'number with an integer part'} lies within the bounds {schema}"
            )
        whole = integer_range(low, high)
        if integral:
            return f"({whole}) space"
        # a fraction after an integer part k stays in range when [k, k+1) fits: k >= low (k >= 0) and k+1 <= high
        fraction_low = max(low if low is not None else 0, 0)
        fraction_high = None if high is None else high - 1
        if fraction_high is not None and fraction_high < fraction_low:
            return f"({whole}) space"
        fractional = f'({_natural_range(fraction_low, fraction_high)}) "." [0-9] [0-9]? [0-9]? [0-9]?'
        return f"(({fractional}) | ({whole})) space"


def schema_to_grammar(schemas: dict[str, Any], compose: Any, param: str, bounds: SchemaBounds) -> str:
    """The GBNF of `compose(prepared)`, where `prepared` maps each key of `schemas` to its prepared schema
    (with `$defs` gathered at the root of what `compose` returns). An unenforceable schema, or one past `bounds`,
    is a 400 on `param`."""
    preparer = _Preparer(bounds)
    try:
        prepared = {
            key: preparer.add(schema, f"assistd-def-{index}") for index, (key, schema) in enumerate(schemas.items())
        }
        document = compose(prepared)
        if "$ref" in document:  # the converter reads nothing beside a "$ref": not the definitions it points into
            document = {"anyOf": [{"$ref": document["$ref"]}]}
        if preparer.defs:
            document = {**document, "$defs": preparer.defs}
        converter = _BoundedConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        converter.visit(converter.resolve_refs(document, "assistd"), "")
        grammar = converter.format_grammar()
        if len(grammar) > bounds.max_grammar_characters:
            raise _Unsupported(
                f"the grammar it needs is {len(grammar):,} characters, over {bounds.max_grammar_characters:,} "
                "(fewer properties, or a maxLength on free-form strings, make it smaller)"
            )
        return grammar
    except _Unsupported as exc:
        raise InvalidRequest(f"Unsupported JSON schema: {exc.message}.", param=param, code="invalid_schema") from exc
    except RecursionError as exc:
        raise InvalidRequest("Unsupported JSON schema: too deeply nested.", param=param, code="invalid_schema") from exc
    except Exception as exc:  # the converter raises plain exceptions of several kinds
        raise InvalidRequest(f"Unsupported JSON schema: {exc}", param=param, code="invalid_schema") from exc
