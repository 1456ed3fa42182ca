"""Pydantic models as code written for OpenAI's structured outputs declares them: nested models, an enum, an
optional field, numeric bounds, recursion. Shared by the grammar unit tests and the end-to-end tests."""

from __future__ import annotations

import enum

import pydantic


class Operator(enum.StrEnum):
    eq = "="
    gt = ">"
    lt = "<"


class Condition(pydantic.BaseModel):
    column: str
    operator: Operator
    value: str | int


class Query(pydantic.BaseModel):
    table_name: str
    columns: list[str]
    conditions: list[Condition]
    order_by: Operator | None
    limit: int = pydantic.Field(ge=1, le=100)


class CalendarEvent(pydantic.BaseModel):
    name: str
    date: str
    participants: list[str]


class Tree(pydantic.BaseModel):
    label: str
    children: list[Tree]
