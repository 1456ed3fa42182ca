"""Who is calling: the project an API key belongs to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    project_id: str
    key_id: str
