"""Evaluated prompt prefixes kept for reuse: a least-recently-used store of model states within a byte budget.

A state holds the model's evaluated context (its KV cache) for a sequence of tokens. A new prompt that starts
with some of those tokens takes the state, cut to the common prefix, and evaluates only the rest. States are
opaque here: the engine saves and restores them; this module picks which to keep and which serves a prompt.

Reuse keeps answers exact. llama.cpp's CPU backend computes a token's logits the same whichever batch of two or
more tokens it is evaluated in, but differently when it is evaluated alone, as every generated token is. So a
state holds only tokens that were evaluated in a batch (a prompt, or an answer evaluated again once it went
out), and the rest of a prompt is evaluated in batches of two tokens or more (`batch_sizes`): a prompt served
from the cache gives the same logits, and at temperature 0 the same answer, as the same prompt evaluated from
scratch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_PROMPT_CACHE_BYTES = 1 << 30

Tokens = Sequence[int] | npt.NDArray[np.intc]


@dataclass(frozen=True)
class CachedPrompt:
    """The state of a context that has evaluated `tokens`; `size` is the state's bytes."""

    tokens: npt.NDArray[np.intc]
    state: Any
    size: int


class PromptCache:
    """Saved states by token prefix, the least recently used dropped first once they pass `capacity_bytes`."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.size_bytes = 0
        self._entries: OrderedDict[int, CachedPrompt] = OrderedDict()  # oldest use first

    def __len__(self) -> int:
        return len(self._entries)

    def longest_prefix(self, tokens: Tokens) -> tuple[CachedPrompt | None, int]:
        """The saved state that shares the longest prefix with `tokens`, and that prefix's length; the state
        counts as used. (None, 0) when none shares a token."""
        best, best_length = None, 0
        for key, entry in self._entries.items():
            length = common_prefix_length(entry.tokens, tokens)
            if length > best_length:
                best, best_length = key, length
        if best is None:
            return None, 0
        self._entries.move_to_end(best)
        return self._entries[best], best_length

    def covers(self, tokens: Tokens) -> bool:
        """Whether a saved state holds all of `tokens` (and maybe more)."""
        return any(common_prefix_length(entry.tokens, tokens) == len(tokens) for entry in self._entries.values())

    def add(self, tokens: Tokens, state: Any, size: int) -> None:
        """Keep `state`, the context after `tokens`, as the most recently used. States whose tokens it extends go:
        it serves their prompts too. A state over the whole budget is not kept."""
        if size > self.capacity_bytes:
            return
        for key in [key for key, entry in self._entries.items() if _is_prefix(entry.tokens, tokens)]:
            self._drop(key)
        entry = CachedPrompt(np.array(tokens, dtype=np.intc), state, size)
        self._entries[id(entry)] = entry
        self.size_bytes += size
        while self.size_bytes > self.capacity_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: int) -> None:
        self.size_bytes -= self._entries.pop(key).size


def common_prefix_length(first: Tokens, second: Tokens) -> int:
    """How many leading tokens the two sequences share."""
    length = min(len(first), len(second))
    differs = np.flatnonzero(np.asarray(first[:length]) != np.asarray(second[:length]))
    return int(differs[0]) if differs.size else length


def _is_prefix(shorter: Tokens, longer: Tokens) -> bool:
    return len(shorter) <= len(longer) and common_prefix_length(shorter, longer) == len(shorter)


def batch_sizes(count: int, limit: int) -> list[int]:
    """Sizes of the batches, at most `limit` tokens each, that evaluate `count` tokens: none of one token, unless
    `count` is 1 (a token evaluated alone gets other logits, see above)."""
    sizes = [limit] * (count // limit) + ([count % limit] if count % limit else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [limit - 1, 2]
    return sizes
