"""Validated request values → plain JSON values for storage."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def to_stored(value: Any) -> Any:
    """Dump pydantic models (recursively, by wire alias, without unset optional fields) to JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [to_stored(item) for item in value]
    return value
