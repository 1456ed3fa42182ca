"""Model names → configured model ids: exact aliases, glob patterns, and the built-in OpenAI families.

Code written for OpenAI passes OpenAI's model names (`gpt-4o`, `text-embedding-3-small`, the legacy engine
`davinci-codex`). Out of the box those families map to the default text model and the default embedding model,
so such code runs unchanged. A name resolves in this order, first match wins:

1. a configured model id;
2. an exact alias from the models file's `[aliases]`;
3. a pattern alias from the models file, in the file's order (`*`, `?` and `[...]` as in shell globs);
4. a built-in OpenAI family (unless `ASSISTD_OPENAI_ALIASES=false`).

An alias whose target is the empty string unmaps the names it matches: they are unknown models (404).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# OpenAI's families, as patterns. Text: chat and completion names, legacy engines (the pre-2023
# `/v1/engines/{engine}/completions` path). Embedding: every `text-embedding-*` name.
OPENAI_TEXT_PATTERNS = (
    "gpt-*",
    "chatgpt-*",
    "o1*",
    "o3*",
    "o4*",
    "davinci*",
    "curie*",
    "babbage*",
    "ada*",
    "text-davinci-*",
    "text-curie-*",
    "text-babbage-*",
    "text-ada-*",
    "code-davinci-*",
    "code-cushman-*",
)
OPENAI_EMBEDDING_PATTERNS = ("text-embedding-*",)

UNMAPPED = ""


class AliasError(ValueError):
    """An alias entry that cannot be used; the message names the entry."""


def is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def _compile(pattern: str) -> re.Pattern[str]:
    """A glob as a full-match regular expression: `*` any run, `?` one character, `[...]` a class."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[":
            end = pattern.find("]", index + 2)
            if end < 0:
                raise AliasError(f"aliases.{pattern}: '[' at position {index} is never closed")
            body = pattern[index + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            parts.append("[" + body.replace("\\", "\\\\") + "]")
            index = end
        elif char == "]":
            raise AliasError(f"aliases.{pattern}: ']' at position {index} closes nothing")
        else:
            parts.append(re.escape(char))
        index += 1
    try:
        return re.compile("".join(parts), re.DOTALL)
    except re.error as exc:
        raise AliasError(f"aliases.{pattern}: {exc}") from exc


@dataclass(frozen=True)
class _PatternAlias:
    pattern: str
    regex: re.Pattern[str]
    target: str


class Aliases:
    """Resolves a client's model name to a model id (or None: not served)."""

    def __init__(
        self,
        models: Iterable[str],
        aliases: Mapping[str, str],
        builtin: Mapping[str, str] | None = None,
    ) -> None:
        """`aliases`: the models file's table (exact names and patterns → model id, or "" to unmap);
        `builtin`: patterns → model id tried last (the OpenAI families), or None when they are off."""
        self._models = frozenset(models)
        self._exact: dict[str, str] = {}
        self._patterns: list[_PatternAlias] = []
        for source, table in (("aliases", aliases), ("built-in OpenAI aliases", builtin or {})):
            for name, target in table.items():
                if not name:
                    raise AliasError(f"{source}: an alias needs a name")
                if target != UNMAPPED and target not in self._models:
                    raise AliasError(f"aliases.{name}: no model named '{target}'")
                if is_pattern(name) or source != "aliases":
                    self._patterns.append(_PatternAlias(name, _compile(name), target))
                else:
                    self._exact[name] = target

    def resolve(self, name: str) -> str | None:
        """The model id `name` stands for, or None when nothing serves it."""
        if name in self._models:
            return name
        if name in self._exact:
            return self._exact[name] or None
        for alias in self._patterns:
            if alias.regex.fullmatch(name):
                return alias.target or None
        return None

    @property
    def exact(self) -> dict[str, str]:
        """The exact aliases that map to a model (what `/v1/models` lists beside the ids)."""
        return {name: target for name, target in self._exact.items() if target}

    def describe(self) -> list[str]:
        """The aliases in resolution order for the start-up log: one line per run of names with the same target."""
        entries = [*self._exact.items(), *((alias.pattern, alias.target) for alias in self._patterns)]
        groups: list[tuple[str, list[str]]] = []
        for name, target in entries:
            if groups and groups[-1][0] == target:
                groups[-1][1].append(name)
            else:
                groups.append((target, [name]))
        return [f"{', '.join(names)} → {target or '(unmapped)'}" for target, names in groups]


def openai_families(text_model: str | None, embedding_model: str | None) -> dict[str, str]:
    """The built-in OpenAI families, mapped to the given default models (a family without one is left out)."""
    families: dict[str, str] = {}
    if text_model:
        families.update(dict.fromkeys(OPENAI_TEXT_PATTERNS, text_model))
    if embedding_model:
        families.update(dict.fromkeys(OPENAI_EMBEDDING_PATTERNS, embedding_model))
    return families
