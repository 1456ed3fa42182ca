"""Attribute filters of vector store search and file_search: comparison and compound (and/or) filters."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from assistd.schemas.vector_stores import ComparisonFilter, CompoundFilter, Filter

_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def matches(condition: Filter | None, attributes: dict[str, Any] | None) -> bool:
    """Whether a file with `attributes` passes `condition` (no condition: every file passes).

    A missing key fails every comparison except `ne` and `nin`; values of different kinds (a number and a
    string) are never equal and never ordered."""
    if condition is None:
        return True
    attributes = attributes or {}
    if isinstance(condition, CompoundFilter):
        results = (matches(part, attributes) for part in condition.filters)
        return all(results) if condition.type == "and" else any(results)
    return _compare(condition, attributes)


def _compare(condition: ComparisonFilter, attributes: dict[str, Any]) -> bool:
    negated = condition.type in ("ne", "nin")
    if condition.key not in attributes:
        return negated
    actual, expected = attributes[condition.key], condition.value
    if condition.type in ("in", "nin"):
        candidates = expected if isinstance(expected, list) else [expected]
        return any(_same(actual, item) for item in candidates) != negated
    if condition.type in ("eq", "ne"):
        return _same(actual, expected) != negated
    if _kind(actual) != _kind(expected) or _kind(actual) == "bool":
        return False
    return _ORDERED[condition.type](actual, expected)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _same(left: Any, right: Any) -> bool:
    return _kind(left) == _kind(right) and left == right
