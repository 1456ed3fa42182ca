"""Reciprocal rank fusion of the full-text and vector result lists.

A chunk's fused score is the weighted sum of 1 / (K + rank) over the lists it appears in, divided by the
best possible sum (rank 1 in every list with a weight), so scores lie in [0, 1]: 1.0 means first in both.
`score_threshold` applies to this score.

K = 10 (rather than the customary 60) makes the first places count: with 60, a chunk that sits anywhere in both
lists beats one that is first in one list only, and on a small store every chunk sits in both. The default
weights (vectors 1, full text 0.5) and K were chosen on bench/retrieval.py (see docs/retrieval.md).
"""

from __future__ import annotations

from collections.abc import Sequence

K = 10


def fuse(ranked: Sequence[tuple[Sequence[int], float]]) -> list[tuple[int, float]]:
    """[(chunk ids best first, weight), ...] → [(chunk id, score)] best first; ties keep the earlier list's order."""
    best = sum(weight for _, weight in ranked) / (K + 1)
    if best <= 0:
        return []
    scores: dict[int, float] = {}
    for ids, weight in ranked:
        if weight <= 0:
            continue
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (K + rank)
    order = sorted(scores.items(), key=lambda item: -item[1])
    return [(chunk_id, min(score / best, 1.0)) for chunk_id, score in order]
