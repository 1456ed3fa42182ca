"""Pydantic error locations → OpenAI `param` strings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from assistd.api.errors import _param_from_loc
from assistd.schemas.assistants import AssistantCreate
from assistd.schemas.messages import MessageCreate


def params(model, body) -> list[str | None]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    return [_param_from_loc(("body", *error["loc"]), body) for error in info.value.errors()]


def test_tagged_union_members_are_not_in_the_param() -> None:
    body = {"model": "m", "tools": [{"type": "function", "function": {"name": "bad name"}}]}
    assert params(AssistantCreate, body) == ["tools[0].function.name"]


def test_plain_union_members_are_not_in_the_param() -> None:
    body = {"role": "user", "content": [{"type": "text", "text": 5}]}
    assert "content[0].text" in params(MessageCreate, body)
    assert set(params(MessageCreate, {"role": "user", "content": 5})) == {"content"}


def test_missing_and_unknown_fields() -> None:
    assert params(AssistantCreate, {}) == ["model"]
    assert params(AssistantCreate, {"model": "m", "extra": 1}) == ["extra"]


def test_query_location() -> None:
    assert _param_from_loc(("query", "limit"), None) == "limit"
    assert _param_from_loc(("body", 17), None) is None
